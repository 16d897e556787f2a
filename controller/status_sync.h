// Keeps each object's status in the API in step with what its passes computed: a status is
// written only when it differs from the last one written, and a status whose write failed is
// remembered, so the next pass starts from it instead of from the API's older one. What that
// pass learnt (status.vcpus.pending above all: which unplug requests are still out) survives
// the failed write, and no unplug is requested twice.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "common/thread_annotations.h"
#include "controller/controller_metrics.h"
#include "controller/source.h"
#include "crd/elasticvm.h"

namespace hotplug::controller {

class StatusSync {
 public:
  StatusSync(ObjectSource& source, StatusWriter& writer, ControllerMetrics& metrics)
      : source_(source), writer_(writer), metrics_(metrics) {}

  // The writes of one pass over one object. Lives on the worker's stack; one thread.
  class Writes {
   public:
    // The object the pass starts from: the source's, with the status its last pass could
    // not write when there is one. Whether to write is still decided against the source's.
    const crd::ElasticVM& input() const { return with_unwritten_ ? *with_unwritten_ : object_; }
    // The InProgress status published before a long pass.
    void Progress(const crd::ElasticVMStatus& status);
    // Writes the pass's final status when it differs from the last one written. False when
    // a write of this pass failed (the caller retries with backoff).
    bool Finish(const crd::ElasticVMStatus& status);

   private:
    friend class StatusSync;
    Writes(StatusSync& sync, const std::string& key, const crd::ElasticVM& object)
        : sync_(sync), key_(key), object_(object) {}

    StatusSync& sync_;
    const std::string key_;
    const crd::ElasticVM& object_;
    std::optional<crd::ElasticVM> with_unwritten_;  // copied only when there is one
    std::optional<crd::ElasticVMStatus> written_;   // what this pass already wrote
    bool failed_ = false;
  };

  // Starts the writes of a pass over `object` (as the source holds it under `key`).
  Writes Begin(const std::string& key, const crd::ElasticVM& object);
  // The object is gone: forget what it could not write.
  void Forget(const std::string& key);

  int64_t writes() const { return writes_.load(); }
  int64_t failures() const { return failures_.load(); }

 private:
  bool Write(const std::string& key, const crd::ElasticVM& object,
             const crd::ElasticVMStatus& status);

  ObjectSource& source_;
  StatusWriter& writer_;
  ControllerMetrics& metrics_;
  std::atomic<int64_t> writes_{0}, failures_{0};

  Mutex mu_;
  // By key, the object's uid and the status its last pass computed but could
  // not write.
  std::unordered_map<std::string, std::pair<std::string, crd::ElasticVMStatus>> unwritten_
      GUARDED_BY(mu_);
};

}  // namespace hotplug::controller

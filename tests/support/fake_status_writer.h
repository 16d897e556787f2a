// The StatusWriter test double: stores each status in a FakeObjectSource (a new
// resourceVersion, as the API server answers a PUT), with injectable failures. Header-only;
// thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "controller/source.h"
#include "crd/codec.h"
#include "tests/support/fake_object_source.h"

namespace hotplug::testing {

class FakeStatusWriter final : public controller::StatusWriter {
 public:
  enum class Mode {
    kStore,           // store the status (tests)
    kEncodeAndStore,  // what KubeStatusWriter does around its PUT, without the network: encode
                      // the object as the body, decode it as the answer, store (benchmarks)
    kDiscard,         // count the write, store nothing (benchmarks)
  };
  // `keep_written`: every status stored is also kept, in order, for written(). Off for long
  // runs (the soak), whose memory must stay flat.
  explicit FakeStatusWriter(FakeObjectSource& source, Mode mode = Mode::kStore,
                            bool keep_written = false)
      : source_(source), keep_written_(keep_written), mode_(mode) {}

  bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                   std::string* error) override {
    Mode mode;
    {
      std::lock_guard lock(mu_);
      attempts_++;
      if (failing_writes_ > 0) {
        failing_writes_--;
        failures_++;
        *error = "InternalError: injected by the test";
        return false;
      }
      mode = mode_;
    }
    if (mode == Mode::kDiscard) return true;
    crd::ElasticVMStatus stored = status;
    if (mode == Mode::kEncodeAndStore) {
      crd::ElasticVM body = object;
      body.status = status;
      crd::DecodeResult answer = crd::DecodeJsonText(crd::EncodeJsonText(body));
      if (!answer.ok()) {
        *error = answer.error;
        return false;
      }
      stored = std::move(answer.object->status);
    }
    // An object deleted meanwhile has nothing to write to: not an error.
    const bool found =
        source_.Mutate(object.Key(), [&](crd::ElasticVM& cached) { cached.status = stored; });
    if (found && keep_written_) {
      std::lock_guard lock(mu_);
      written_.push_back(status);
    }
    return true;
  }

  void set_mode(Mode mode) {
    std::lock_guard lock(mu_);
    mode_ = mode;
  }
  // The next `count` writes fail, leaving the stored status as it was.
  void FailNextWrites(int count) {
    std::lock_guard lock(mu_);
    failing_writes_ = count;
  }
  // The statuses stored, in order (with keep_written).
  std::vector<crd::ElasticVMStatus> written() const {
    std::lock_guard lock(mu_);
    return written_;
  }
  int64_t attempts() const {
    std::lock_guard lock(mu_);
    return attempts_;
  }
  int64_t failures() const {
    std::lock_guard lock(mu_);
    return failures_;
  }

 private:
  FakeObjectSource& source_;
  const bool keep_written_;
  mutable std::mutex mu_;
  // Everything below is guarded by mu_.
  Mode mode_;
  int failing_writes_ = 0;
  int64_t attempts_ = 0;
  int64_t failures_ = 0;
  std::vector<crd::ElasticVMStatus> written_;
};

}  // namespace hotplug::testing

// The work loop: keys arrive from the ObjectSource, from hypervisor domain events and from
// a periodic resync; N workers take them from the work queue, run one reconcile pass each,
// write the status when it changed, record Events, and requeue per the pass's Result.
// Where objects come from (Kubernetes, a folder) is behind controller/source.h.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backends/hypervisor.h"
#include "controller/source.h"
#include "controller/workqueue.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"

namespace hotplug::controller {

// What the controller reports; no-op defaults. The metrics engineer implements this (and
// hands out the queue's and the reconciler's metrics) to plug Prometheus in.
class ControllerMetrics {
 public:
  virtual ~ControllerMetrics() = default;
  // result: success | requeue | error | deleted | skipped
  virtual void ReconcileDone(std::string_view result, double seconds) {
    (void)result, (void)seconds;
  }
  // result: success | failure
  virtual void StatusWrite(std::string_view result) { (void)result; }
  virtual void EventRecorded(std::string_view type, std::string_view reason) {
    (void)type, (void)reason;
  }
  virtual void ActiveWorkers(int workers) { (void)workers; }
  virtual void Leading(bool leading) { (void)leading; }
  // Non-null to receive the work queue's and the reconciler's own measurements.
  virtual WorkQueueMetrics* QueueMetrics() { return nullptr; }
  virtual reconciler::Metrics* ReconcilerMetrics() { return nullptr; }
};

class Controller {
 public:
  struct Options {
    int workers = 2;
    // Every key is queued again this often (0 = never).
    std::chrono::milliseconds resync_period{std::chrono::minutes(10)};
    reconciler::Options reconciler;  // stop_requested is set by the controller
    RateLimiter::Options rate_limiter;
    ControllerMetrics* metrics = nullptr;  // not owned
  };

  Controller(ObjectSource& source, StatusWriter& status_writer, EventRecorder& events,
             backends::Hypervisor& hypervisor, const reconciler::Clock& clock, Options options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the source (its changes feed the queue), the hypervisor's event sink and the
  // resync thread. Workers are started separately (only the leader runs them).
  void Start();
  // Starts the workers. Idempotent.
  void StartWorkers();
  // Graceful stop: asks running passes to stop after the step in flight, lets them write
  // their status, drops what is still queued, joins the workers, then stops the source.
  // Returns false when a worker was still busy at `deadline` (its thread is then left to
  // the process exit).
  bool Stop(std::chrono::steady_clock::time_point deadline);

  bool HasSynced() const { return source_.HasSynced(); }
  WorkQueue& queue() { return queue_; }

  // Counters for tests and logs.
  int64_t passes() const { return passes_.load(); }
  int64_t status_writes() const { return status_writes_.load(); }
  int64_t status_write_failures() const { return status_write_failures_.load(); }

 private:
  void OnChange(const std::string& key);
  void OnDomainEvent(const std::string& domain);
  void Worker(int index);
  void Process(reconciler::Reconciler& reconciler, const std::string& key);
  bool Write(const std::string& key, const crd::ElasticVM& object,
             const crd::ElasticVMStatus& status);
  void Resync();

  ObjectSource& source_;
  StatusWriter& status_writer_;
  EventRecorder& events_;
  backends::Hypervisor& hypervisor_;
  const reconciler::Clock& clock_;
  Options options_;
  ControllerMetrics no_metrics_;
  ControllerMetrics* metrics_;
  WorkQueue queue_;
  std::atomic<bool> stop_requested_{false};  // read by running passes between steps
  std::atomic<int64_t> passes_{0}, status_writes_{0}, status_write_failures_{0};

  std::vector<std::thread> workers_;  // "worker-N"
  std::thread resync_thread_;         // "resync"
  std::atomic<int> workers_running_{0};

  std::mutex index_mu_;
  // Guarded by index_mu_: which keys name which libvirt domain, for domain events. Domains
  // are held as 64-bit hashes of their names and keys once (the second map points into the
  // first's nodes, which never move): about 150 bytes per object instead of two copies of
  // every name. Two domains with the same hash would only cost a spurious pass.
  std::unordered_map<std::string, size_t> domain_hash_of_key_;
  std::unordered_multimap<size_t, const std::string*> keys_of_domain_hash_;

  std::mutex unwritten_mu_;
  // Guarded by unwritten_mu_: by key, the object's uid and the status its last pass computed
  // but could not write. The next pass starts from it instead of the API's older status, so
  // what that pass learnt (status.vcpus.pending above all: which unplug requests are still
  // out) survives the failed write and no unplug is requested twice.
  std::unordered_map<std::string, std::pair<std::string, crd::ElasticVMStatus>> unwritten_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes the resync thread and Stop's wait
  bool stopping_ = false;            // guarded by stop_mu_
  bool started_ = false;             // guarded by stop_mu_
  bool workers_started_ = false;     // guarded by stop_mu_
};

}  // namespace hotplug::controller

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
#include "common/thread_annotations.h"
#include "controller/controller_metrics.h"
#include "controller/domain_index.h"
#include "controller/domain_locks.h"
#include "controller/owned_domains.h"
#include "controller/source.h"
#include "controller/status_sync.h"
#include "controller/worker_pool.h"
#include "controller/workqueue.h"
#include "reconciler/autoscaler.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"

namespace hotplug::controller {

class Controller {
 public:
  struct Options {
    int workers = 2;
    // Every key is queued again this often (0 = never).
    std::chrono::milliseconds resync_period{std::chrono::minutes(10)};
    reconciler::Options reconciler;  // stop_requested is set by the controller
    RateLimiter::Options rate_limiter;
    ControllerMetrics* metrics = nullptr;  // not owned
    // spec.*.autoscale: how often a load sample is taken and over how long it is averaged.
    reconciler::AutoscaleOptions autoscale;
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
  int64_t status_writes() const { return status_sync_.writes(); }
  int64_t status_write_failures() const { return status_sync_.failures(); }

 private:
  void OnChange(const std::string& key);
  void OnDomainEvent(const std::string& domain);
  void Worker();
  // One key, as controller-runtime's reconcileHandler: fetch, reconcile, record, requeue.
  void Process(reconciler::Reconciler& reconciler, const std::string& key);
  void RecordEvents(const crd::ElasticVM& object, const std::vector<reconciler::Event>& events);
  // An owner deleted or pointed at another domain gives its old domain back, and the objects
  // naming that domain are queued so that the next claimant takes over.
  void ReleaseClaimLeftBehind(const std::string& key, const std::optional<std::string>& domain);
  // reconciler::Options::claim_is_stale: the claim was made by a process of this one's scope,
  // whose cache (once synced) has no such owner, or one that names another domain.
  bool ClaimIsStale(const backends::DomainClaim& claim, const std::string& domain) const;
  // Drives the queue by the pass's Result; `written`: every status write of the pass landed.
  void Requeue(const std::string& key, const reconciler::Result& result, bool written,
               double seconds);
  void Resync();

  ObjectSource& source_;
  EventRecorder& events_;
  backends::Hypervisor& hypervisor_;
  const reconciler::Clock& clock_;
  Options options_;
  ControllerMetrics no_metrics_;
  ControllerMetrics* metrics_;
  WorkQueue queue_;
  std::atomic<bool> stop_requested_{false};  // read by running passes between steps
  std::atomic<int64_t> passes_{0};

  std::thread resync_thread_;  // "resync"

  DomainIndex domain_index_;    // which keys name which domain, for domain events
  DomainLocks domain_locks_;    // one pass per domain at a time
  OwnedDomains owned_domains_;  // the claims this process's objects hold
  StatusSync status_sync_;
  reconciler::Autoscaler autoscaler_;  // the workers' shared autoscale samples

  Mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes the resync thread
  bool stopping_ GUARDED_BY(stop_mu_) = false;
  bool started_ GUARDED_BY(stop_mu_) = false;
  // Last: destroyed first, so every worker has returned before the parts it uses go.
  WorkerPool workers_;  // "worker-N"
};

}  // namespace hotplug::controller

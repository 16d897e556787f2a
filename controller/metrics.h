// The operator's Prometheus metrics: one object that implements every measurement seam
// (controller, work queue, reconciler, informer, API client), keeps the figures in a
// prometheus-cpp registry and serves them as /metrics. docs/metrics.md lists every metric.
// No metric has a per-object label: cardinality stays bounded however many ElasticVMs
// there are; per-object detail lives in each object's status and Events.
#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/thread_annotations.h"
#include "controller/autoscale_metrics.h"
#include "controller/controller.h"
#include "controller/kube/client.h"
#include "controller/kube/informer.h"
#include "controller/source.h"
#include "controller/workqueue.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace hotplug::controller {

class PrometheusMetrics final : public ControllerMetrics,
                                public WorkQueueMetrics,
                                public reconciler::Metrics,
                                public kube::InformerMetrics,
                                public kube::ClientMetrics {
 public:
  // `version` becomes hotplug_build_info{version}; `clock` times the sync latency and the
  // work in flight.
  PrometheusMetrics(std::string version, const reconciler::Clock& clock);
  ~PrometheusMetrics() override;
  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;

  // Serves /metrics on `bind_address` (controller/bind_address.h: "host:port", ":port" for
  // every interface, "[v6]:port"); port 0 picks a free port (see port()). Returns false and sets
  // `error` when the address is malformed or cannot be bound. Call at most once.
  bool Serve(const std::string& bind_address, std::string* error);
  // The port actually bound, or 0 when not serving.
  int port() const;

  // The exposition text of every metric, as a scrape would return it (tests, debugging).
  std::string Scrape() const;

  // --- the sync-latency and per-object gauges (fed by MeteredSource/MeteredStatusWriter)
  // An object was added or changed on the watch (nullptr: deleted). A new generation starts
  // the clock of hotplug_sync_duration_seconds for that object.
  void ObjectChanged(const std::string& key, const crd::ElasticVM* object);
  // A status was written for `object` (the version it was based on). Ready=True for the
  // generation being waited for stops that clock; failures not already in the object's
  // status are counted.
  void StatusWritten(const crd::ElasticVM& object, const crd::ElasticVMStatus& status);

  // --- ControllerMetrics
  void ReconcileDone(std::string_view result, double seconds) override;
  void StatusWrite(std::string_view result) override;
  void EventRecorded(std::string_view type, std::string_view reason) override;
  void ActiveWorkers(int workers) override;
  void Leading(bool leading) override;
  WorkQueueMetrics* QueueMetrics() override { return this; }
  reconciler::Metrics* ReconcilerMetrics() override { return this; }

  // --- WorkQueueMetrics (queue name "elasticvm")
  void Added() override;
  void Depth(size_t depth) override;
  void QueueLatency(double seconds) override;
  void WorkDuration(double seconds) override;
  void Retried() override;

  // --- reconciler::Metrics
  void VcpuOperation(std::string_view operation, std::string_view result, double seconds) override;
  void MemoryOperation(std::string_view operation, std::string_view result,
                       double seconds) override;
  void AutoscaleDecision(const reconciler::AutoscaleDecisionRecord& record) override;
  void AutoscaleForgotten(const std::string& key) override;

  // --- kube::InformerMetrics
  void Listed(size_t objects, double seconds) override;
  void WatchEvent(std::string_view type) override;
  void WatchRestarted(std::string_view why) override;
  void CacheSize(size_t objects) override;
  void Received(std::string_view verb, size_t objects, size_t bytes) override;

  // --- kube::ClientMetrics
  void Request(std::string_view verb, int http_status, double seconds) override;

 private:
  class ScrapeTimeCollectable;
  // What the gauges need to know of one object; kept small (one per cached object): the
  // condition statuses as indexes into metrics.cc's kConditionStatuses, the Ready reason
  // as a reconciler::Reason (or kNoReason / kOtherReason).
  struct ObjectState {
    static constexpr int16_t kNoReason = -1;     // no Ready condition, or no reason: "None"
    static constexpr int16_t kOtherReason = -2;  // a reason the reconciler never writes
    int64_t generation = 0;                      // the newest generation seen
    // Set while waiting for Ready=True at `generation`: when the watch delivered it.
    std::optional<std::chrono::steady_clock::time_point> waiting_since;
    int64_t vcpu_drift = 0;
    int16_t ready_reason = kNoReason;
    uint8_t ready_status = 2;  // "Unknown"
    uint8_t vcpus_synced_status = 2;
    uint8_t memory_synced_status = 2;
  };
  static void Snapshot(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                       ObjectState* state);
  // The sums over objects_ the gauges show, kept as objects change (a scrape reads them,
  // it does not walk 100,000 objects).
  struct Tally {
    static constexpr size_t kStatuses = 3;  // metrics.cc's kConditionStatuses
    // By reconciler::Reason, then "None" and "Other".
    static constexpr size_t kReasonSlots = std::size(reconciler::kReasons) + 2;
    int64_t by_condition[3][kStatuses] = {};  // Ready, VCPUsSynced, MemorySynced
    int64_t by_reason[kReasonSlots] = {};
    int64_t drift = 0;
    // Counts `state` in (sign 1) or out (sign -1).
    void Count(const ObjectState& state, int sign);
  };
  // Replaces what objects_[key] says by `object` with `status` in the tally; `inserted`: the
  // entry is new, so nothing of it was counted yet.
  void Recount(ObjectState& state, bool inserted, const crd::ElasticVM& object,
               const crd::ElasticVMStatus& status) REQUIRES(mu_);
  // Sets the gauges that are derived at scrape time.
  void RefreshDerivedGauges();
  // The constructor's parts: the families by subject, then the series that exist from start.
  void RegisterOperationMetrics();
  void RegisterObjectMetrics();
  void RegisterInformerMetrics();
  void RegisterQueueMetrics();
  void CreateBoundedSeries();

  const reconciler::Clock& clock_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<ScrapeTimeCollectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::string knock_host_;  // where to connect to wake the server when stopping

  prometheus::Family<prometheus::Histogram>* vcpu_duration_;
  prometheus::Family<prometheus::Histogram>* memory_duration_;
  prometheus::Family<prometheus::Counter>* vcpu_total_;
  prometheus::Family<prometheus::Counter>* memory_total_;
  prometheus::Family<prometheus::Counter>* failures_total_;
  prometheus::Histogram* sync_duration_;
  prometheus::Family<prometheus::Counter>* reconcile_total_;
  prometheus::Histogram* reconcile_duration_;
  prometheus::Family<prometheus::Counter>* status_writes_total_;
  prometheus::Family<prometheus::Counter>* events_total_;
  prometheus::Gauge* active_workers_;
  prometheus::Gauge* leader_;
  prometheus::Family<prometheus::Gauge>* elasticvms_;
  prometheus::Family<prometheus::Gauge>* elasticvms_ready_reason_;
  prometheus::Gauge* vcpu_drift_;
  prometheus::Family<prometheus::Counter>* informer_reconnects_;
  prometheus::Counter* informer_relists_;
  prometheus::Counter* informer_lists_;
  prometheus::Family<prometheus::Counter>* informer_events_;
  prometheus::Gauge* informer_cache_objects_;
  // By verb (list|watch): what the API server sent the informer.
  prometheus::Counter* informer_received_objects_[2];
  prometheus::Counter* informer_received_bytes_[2];
  // Its series appears with the first LIST, so a process without an informer (standalone)
  // has none and the watch-stalled alert cannot fire there.
  prometheus::Family<prometheus::Gauge>* informer_last_activity_;
  prometheus::Family<prometheus::Counter>* rest_requests_;
  prometheus::Family<prometheus::Histogram>* rest_duration_;
  prometheus::Gauge* queue_depth_;
  prometheus::Counter* queue_adds_;
  prometheus::Histogram* queue_duration_;
  prometheus::Histogram* work_duration_;
  prometheus::Counter* queue_retries_;
  prometheus::Gauge* queue_unfinished_;
  prometheus::Gauge* queue_longest_running_;
  std::unique_ptr<AutoscaleMetrics> autoscale_;

  mutable Mutex mu_;
  // Per-object state for the derived gauges and the sync clock, and when
  // each key now in a worker's hands was taken (a multiset: the queue says how long an
  // item worked, not which one, so the start nearest to now - seconds is removed).
  std::unordered_map<std::string, ObjectState> objects_ GUARDED_BY(mu_);
  Tally tally_ GUARDED_BY(mu_);
  std::multiset<std::chrono::steady_clock::time_point> in_flight_ GUARDED_BY(mu_);
  int64_t lists_ GUARDED_BY(mu_) = 0;
};

// An ObjectSource that tells `metrics` about every change it delivers, then passes it on.
class MeteredSource final : public ObjectSource {
 public:
  MeteredSource(ObjectSource& inner, PrometheusMetrics& metrics)
      : inner_(inner), metrics_(metrics) {}
  void Start(ChangeHandler on_change) override;
  void Stop() override { inner_.Stop(); }
  bool HasSynced() const override { return inner_.HasSynced(); }
  std::optional<crd::ElasticVM> Get(const std::string& key) const override {
    return inner_.Get(key);
  }
  std::vector<std::string> Keys() const override { return inner_.Keys(); }
  void Released(const std::string& key) override { inner_.Released(key); }

 private:
  ObjectSource& inner_;
  PrometheusMetrics& metrics_;
};

// A StatusWriter that tells `metrics` about every status it wrote successfully.
class MeteredStatusWriter final : public StatusWriter {
 public:
  MeteredStatusWriter(StatusWriter& inner, PrometheusMetrics& metrics)
      : inner_(inner), metrics_(metrics) {}
  bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                   std::string* error) override;

 private:
  StatusWriter& inner_;
  PrometheusMetrics& metrics_;
};

}  // namespace hotplug::controller

#include "controller/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <exception>
#include <iterator>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "backends/hypervisor.h"
#include "controller/bind_address.h"
#include "controller/http_serving.h"
#include "controller/log.h"

namespace hotplug::controller {
namespace {

using prometheus::Histogram;

// 1 ms to 60 s: a vCPU plug takes 11-23 ms, a TCG unplug times out after 5 s.
const Histogram::BucketBoundaries kOperationBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// A spec change to Ready spans queueing, several steps and the status write.
const Histogram::BucketBoundaries kSyncBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                  5,    10,    30,   60,  120,  300, 600};
// controller-runtime's work-queue buckets: 10 ns to 10 s, ten per decade.
const Histogram::BucketBoundaries kQueueBuckets = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4,
                                                   1e-3, 1e-2, 1e-1, 1,    10};
const Histogram::BucketBoundaries kRestBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,    2.5,   5,    10,  30};

constexpr const char* kQueueName = "elasticvm";

// A metric family registered in `registry`.
template <typename Metric>
prometheus::Family<Metric>* Family(prometheus::Registry& registry, const std::string& name,
                                   const std::string& help) {
  return &prometheus::detail::Builder<Metric>().Name(name).Help(help).Register(registry);
}

const char* const kConditionStatuses[] = {"True", "False", "Unknown"};

// A label value taken from code-defined words (reasons, operations): kept when it is one
// short word, else "Other".
std::string Word(std::string_view value) {
  if (value.empty() || value.size() > 64) return "Other";
  for (char c : value) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return "Other";
  }
  return std::string(value);
}

// The status of condition `type` as an index into kConditionStatuses ("Unknown" when absent
// or neither True nor False); `reason`, when given, gets its reason.
uint8_t ConditionStatus(const crd::ElasticVMStatus& status, std::string_view type,
                        std::string_view* reason = nullptr) {
  for (const auto& condition : status.conditions) {
    if (condition.type != type) continue;
    if (reason) *reason = condition.reason;
    if (condition.status == "True") return 0;
    if (condition.status == "False") return 1;
    return 2;
  }
  return 2;
}

bool ReadyFor(const crd::ElasticVMStatus& status, int64_t generation) {
  return status.observed_generation >= generation && ConditionStatus(status, "Ready") == 0;
}

double SecondsSince(std::chrono::steady_clock::time_point start,
                    std::chrono::steady_clock::time_point now) {
  return std::chrono::duration<double>(now - start).count();
}

// Connects to host:port and hangs up at once (see ~PrometheusMetrics). `host` is an IPv4
// or a bracketed IPv6 literal; anything else is not knocked on.
void Knock(const std::string& host, int port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v4;
  } else if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
             inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v6;
  } else {
    return;
  }
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  connect(fd, reinterpret_cast<sockaddr*>(&address), length);
  close(fd);
}

// Where to knock to reach a server bound to `host`: the wildcard is reached on loopback.
std::string KnockHost(const std::string& host) {
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "[::]") return "[::1]";
  return host;
}

}  // namespace

// Refreshes the gauges derived from state just before each scrape collects the registry.
class PrometheusMetrics::ScrapeTimeCollectable final : public prometheus::Collectable {
 public:
  explicit ScrapeTimeCollectable(PrometheusMetrics& owner) : owner_(owner) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    owner_.RefreshDerivedGauges();
    return owner_.registry_->Collect();
  }

 private:
  PrometheusMetrics& owner_;
};

PrometheusMetrics::PrometheusMetrics(std::string version, const reconciler::Clock& clock)
    : clock_(clock), registry_(std::make_shared<prometheus::Registry>()) {
  RegisterOperationMetrics();
  RegisterObjectMetrics();
  RegisterInformerMetrics();
  RegisterQueueMetrics();
  Family<prometheus::Gauge>(*registry_, "hotplug_build_info",
                            "Always 1; the version of this build is a label.")
      ->Add({{"version", std::move(version)}})
      .Set(1);
  CreateBoundedSeries();
  autoscale_ = std::make_unique<AutoscaleMetrics>(*registry_);
  collectable_ = std::make_shared<ScrapeTimeCollectable>(*this);
}

void PrometheusMetrics::RegisterOperationMetrics() {
  auto& r = *registry_;
  vcpu_duration_ = Family<Histogram>(r, "hotplug_vcpu_operation_duration_seconds",
                                     "Time of one per-vCPU hypervisor call, by operation "
                                     "(plug|unplug|online) and result (success|failure|pending).");
  memory_duration_ = Family<Histogram>(r, "hotplug_memory_operation_duration_seconds",
                                       "Time of one memory step, by operation "
                                       "(attach|detach|resize|balloon) and result.");
  vcpu_total_ = Family<prometheus::Counter>(r, "hotplug_vcpu_operations_total",
                                            "Per-vCPU hypervisor calls, by operation and result.");
  memory_total_ = Family<prometheus::Counter>(r, "hotplug_memory_operations_total",
                                              "Memory steps, by operation and result.");
  failures_total_ = Family<prometheus::Counter>(
      r, "hotplug_operation_failures_total",
      "Failures recorded in status.failures, by resource (vcpu|memory) and reason.");
  sync_duration_ = &Family<Histogram>(r, "hotplug_sync_duration_seconds",
                                      "From the watch delivering a new generation of an "
                                      "ElasticVM to the status write saying Ready=True for it.")
                        ->Add({}, kSyncBuckets);
  reconcile_total_ = Family<prometheus::Counter>(
      r, "hotplug_reconcile_total",
      "Reconcile passes, by result (success|requeue|error|deleted|skipped).");
  reconcile_duration_ = &Family<Histogram>(r, "hotplug_reconcile_duration_seconds",
                                           "Time of one reconcile pass, status write included.")
                             ->Add({}, kOperationBuckets);
  status_writes_total_ = Family<prometheus::Counter>(r, "hotplug_status_writes_total",
                                                     "Status writes, by result (success|failure).");
  events_total_ = Family<prometheus::Counter>(r, "hotplug_events_total",
                                              "Kubernetes Events recorded, by type and reason.");
  active_workers_ =
      &Family<prometheus::Gauge>(r, "hotplug_active_workers", "Reconcile workers running.")
           ->Add({});
  leader_ = &Family<prometheus::Gauge>(r, "hotplug_leader",
                                       "1 while this process runs the workers (leader, or no "
                                       "election).")
                 ->Add({});
}

void PrometheusMetrics::RegisterObjectMetrics() {
  auto& r = *registry_;
  elasticvms_ = Family<prometheus::Gauge>(r, "hotplug_elasticvms",
                                          "ElasticVMs in the cache, by condition "
                                          "(Ready|VCPUsSynced|MemorySynced) and status "
                                          "(True|False|Unknown).");
  elasticvms_ready_reason_ = Family<prometheus::Gauge>(
      r, "hotplug_elasticvms_ready_reason",
      "ElasticVMs by the reason of their Ready condition (\"None\" when there is none yet).");
  vcpu_drift_ =
      &Family<prometheus::Gauge>(r, "hotplug_vcpu_drift",
                                 "Sum over ElasticVMs of |desired vCPUs - status.vcpus.current|.")
           ->Add({});
}

void PrometheusMetrics::RegisterInformerMetrics() {
  auto& r = *registry_;
  informer_reconnects_ =
      Family<prometheus::Counter>(r, "hotplug_informer_reconnects_total",
                                  "Watch streams that ended and were reopened, by reason "
                                  "(closed|broken|gone|error|http_error).");
  informer_lists_ = &Family<prometheus::Counter>(r, "hotplug_informer_lists_total",
                                                 "Full LISTs of ElasticVMs, the first included.")
                         ->Add({});
  informer_relists_ =
      &Family<prometheus::Counter>(r, "hotplug_informer_relists_total",
                                   "LISTs after the first (410 Gone, an ERROR event).")
           ->Add({});
  informer_events_ = Family<prometheus::Counter>(r, "hotplug_informer_watch_events_total",
                                                 "Watch events received, by type.");
  informer_cache_objects_ = &Family<prometheus::Gauge>(r, "hotplug_informer_cache_objects",
                                                       "ElasticVMs in the informer's cache.")
                                 ->Add({});
  auto* received_objects = Family<prometheus::Counter>(
      r, "hotplug_informer_received_objects_total",
      "ElasticVMs the API server sent the informer, by verb (list|watch).");
  auto* received_bytes = Family<prometheus::Counter>(
      r, "hotplug_informer_received_bytes_total",
      "Bytes of JSON the API server sent the informer, by verb (list|watch).");
  for (int i = 0; i < 2; ++i) {
    const char* verb = i == 0 ? "list" : "watch";
    informer_received_objects_[i] = &received_objects->Add({{"verb", verb}});
    informer_received_bytes_[i] = &received_bytes->Add({{"verb", verb}});
  }
  informer_last_activity_ = Family<prometheus::Gauge>(
      r, "hotplug_informer_last_activity_timestamp_seconds",
      "Unix time of the informer's last LIST or watch event (bookmarks included).");
  rest_requests_ = Family<prometheus::Counter>(
      r, "rest_client_requests_total",
      "Kubernetes API requests, by HTTP code (\"<error>\": no answer) and method.");
  rest_duration_ = Family<Histogram>(r, "rest_client_request_duration_seconds",
                                     "Kubernetes API request latency, by verb.");
}

// controller-runtime's work-queue metrics, names and help as it writes them.
void PrometheusMetrics::RegisterQueueMetrics() {
  auto& r = *registry_;
  const prometheus::Labels queue = {{"name", kQueueName}};
  queue_depth_ =
      &Family<prometheus::Gauge>(r, "workqueue_depth", "Current depth of workqueue")->Add(queue);
  queue_adds_ = &Family<prometheus::Counter>(r, "workqueue_adds_total",
                                             "Total number of adds handled by workqueue")
                     ->Add(queue);
  queue_duration_ = &Family<Histogram>(r, "workqueue_queue_duration_seconds",
                                       "How long in seconds an item stays in workqueue before "
                                       "being requested")
                         ->Add(queue, kQueueBuckets);
  work_duration_ = &Family<Histogram>(r, "workqueue_work_duration_seconds",
                                      "How long in seconds processing an item from workqueue "
                                      "takes.")
                        ->Add(queue, kQueueBuckets);
  queue_retries_ = &Family<prometheus::Counter>(r, "workqueue_retries_total",
                                                "Total number of retries handled by workqueue")
                        ->Add(queue);
  queue_unfinished_ = &Family<prometheus::Gauge>(r, "workqueue_unfinished_work_seconds",
                                                 "How many seconds of work has been done that "
                                                 "is in progress and hasn't been observed by "
                                                 "work_duration.")
                           ->Add(queue);
  queue_longest_running_ =
      &Family<prometheus::Gauge>(r, "workqueue_longest_running_processor_seconds",
                                 "How many seconds has the longest running processor for "
                                 "workqueue been running.")
           ->Add(queue);
}

// Every series of a bounded label set exists from the start, so rate() and alerts see a 0
// before the first event instead of nothing.
void PrometheusMetrics::CreateBoundedSeries() {
  for (const char* operation : {"plug", "unplug", "online"}) {
    for (const char* result : {"success", "failure", "pending"}) {
      vcpu_duration_->Add({{"operation", operation}, {"result", result}}, kOperationBuckets);
      vcpu_total_->Add({{"operation", operation}, {"result", result}});
    }
  }
  for (const char* operation : {"attach", "detach", "resize", "balloon"}) {
    for (const char* result : {"success", "failure"}) {
      memory_duration_->Add({{"operation", operation}, {"result", result}}, kOperationBuckets);
      memory_total_->Add({{"operation", operation}, {"result", result}});
    }
  }
  // Failures by every reason a step can fail with (the hypervisor's error codes, or a
  // hook), so increase() sees the first failure of a kind as a step up from 0.
  for (const char* resource : {"vcpu", "memory"}) {
    for (int code = static_cast<int>(backends::ErrorCode::kDomainNotFound);
         code <= static_cast<int>(backends::ErrorCode::kInternal); ++code) {
      const auto reason = reconciler::ReasonForError(static_cast<backends::ErrorCode>(code));
      failures_total_->Add({{"resource", resource}, {"reason", reconciler::ReasonName(reason)}});
    }
    failures_total_->Add({{"resource", resource},
                          {"reason", reconciler::ReasonName(reconciler::Reason::kHookFailed)}});
  }
  for (const char* why : {"closed", "broken", "gone", "error", "http_error"}) {
    informer_reconnects_->Add({{"reason", why}});
  }
  for (const char* result : {"success", "requeue", "error", "deleted", "skipped"}) {
    reconcile_total_->Add({{"result", result}});
  }
  for (const char* result : {"success", "failure"}) status_writes_total_->Add({{"result", result}});
  for (const char* condition : {"Ready", "VCPUsSynced", "MemorySynced"}) {
    for (const char* status : kConditionStatuses) {
      elasticvms_->Add({{"condition", condition}, {"status", status}});
    }
  }
}

PrometheusMetrics::~PrometheusMetrics() {
  // Stop serving before the registry and the state a scrape reads go away. civetweb's
  // listener polls its socket with a 2 s quantum and notices the stop only when the poll
  // returns: a thread ("metrics-stop") knocks on the port until the server is gone, so the
  // process exits in milliseconds instead of up to 2 s later.
  if (!exposer_) return;
  std::atomic<bool> stopped{false};
  std::thread knocker([this, &stopped] {
    for (int i = 0; i < 300 && !stopped.load(); ++i) {  // gives up after ~3 s
      Knock(knock_host_, port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  exposer_.reset();
  stopped = true;
  knocker.join();
}

bool PrometheusMetrics::Serve(const std::string& bind_address, std::string* error) {
  const std::optional<std::string> civet_address = CivetListeningPort(bind_address);
  if (!civet_address) {
    *error = "metrics bind address \"" + bind_address + "\" is not " + kBindAddressForms +
             " (e.g. :8080, 127.0.0.1:0)";
    return false;
  }
  const std::string& address = *civet_address;
  try {
    // Enough civetweb workers and request deadlines that slow or idle clients cannot keep
    // Prometheus out (http_serving.h).
    exposer_ = std::make_unique<prometheus::Exposer>(CivetOptions(address));
  } catch (const std::exception& e) {
    *error = "cannot serve metrics on " + bind_address + ": " + e.what();
    return false;
  }
  exposer_->RegisterCollectable(collectable_);
  std::vector<int> ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
  auto colon = address.rfind(':');
  knock_host_ = KnockHost(colon == std::string::npos ? "" : address.substr(0, colon));
  log::Info("serving metrics",
            {{"address", bind_address}, {"port", std::to_string(port_)}, {"path", "/metrics"}});
  return true;
}

int PrometheusMetrics::port() const { return port_; }

std::string PrometheusMetrics::Scrape() const {
  return prometheus::TextSerializer().Serialize(collectable_->Collect());
}

void PrometheusMetrics::Snapshot(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                                 ObjectState* state) {
  std::string_view reason;
  state->ready_status = ConditionStatus(status, reconciler::condition::kReady, &reason);
  // Condition reasons the reconciler writes (its table); any other (a hand-edited status)
  // is "Other", so the label set stays bounded.
  std::optional<reconciler::Reason> known = reconciler::ParseReason(reason);
  state->ready_reason = reason.empty() ? ObjectState::kNoReason
                        : known        ? static_cast<int16_t>(*known)
                                       : ObjectState::kOtherReason;
  state->vcpus_synced_status = ConditionStatus(status, reconciler::condition::kVcpusSynced);
  state->memory_synced_status = ConditionStatus(status, reconciler::condition::kMemorySynced);
  state->vcpu_drift = 0;
  const bool autoscaled = object.spec.cpu.autoscale.has_value();
  if ((object.spec.cpu.managed() || autoscaled) && status.vcpus) {
    // spec.cpu.sockets, or spec.cpu.autoscale (vcpus is only its start): the pass turned it
    // into a count of vCPUs, status.vcpus.desired.
    const int64_t desired =
        autoscaled ? status.vcpus->desired : object.spec.cpu.vcpus.value_or(status.vcpus->desired);
    state->vcpu_drift = desired > status.vcpus->current ? desired - status.vcpus->current
                                                        : status.vcpus->current - desired;
  }
}

void PrometheusMetrics::ObjectChanged(const std::string& key, const crd::ElasticVM* object) {
  // Not the autoscale series: a pass of this object may still be deciding on a worker, and
  // would make them again. The worker drops them after its last pass (AutoscaleForgotten).
  MutexLock lock(mu_);
  if (!object) {
    if (auto gone = objects_.find(key); gone != objects_.end()) {
      tally_.Count(gone->second, -1);
      objects_.erase(gone);
    }
    return;
  }
  auto [it, inserted] = objects_.try_emplace(key);
  ObjectState& state = it->second;
  const int64_t generation = object->metadata.generation;
  if (inserted || generation > state.generation) {
    state.generation = generation;
    // Already Ready for it (a restart, a relist): nothing to wait for.
    if (ReadyFor(object->status, generation)) {
      state.waiting_since.reset();
    } else {
      state.waiting_since = clock_.Monotonic();
    }
  }
  Recount(state, inserted, *object, object->status);
}

void PrometheusMetrics::StatusWritten(const crd::ElasticVM& object,
                                      const crd::ElasticVMStatus& status) {
  // Failures this write added: those not already in the status it replaces (a multiset
  // difference, so a retried write of the same failure is not counted again).
  std::map<std::pair<std::string, std::string>, int> added;
  std::vector<const crd::Failure*> previous;
  for (const auto& failure : object.status.failures) previous.push_back(&failure);
  for (const auto& failure : status.failures) {
    auto match = std::find_if(previous.begin(), previous.end(),
                              [&](const crd::Failure* old) { return old && *old == failure; });
    if (match != previous.end()) {
      *match = nullptr;  // each old entry pairs with one new one
      continue;
    }
    added[{Word(failure.resource), Word(failure.reason)}]++;
  }
  for (const auto& [labels, count] : added) {
    failures_total_->Add({{"resource", labels.first}, {"reason", labels.second}}).Increment(count);
  }

  MutexLock lock(mu_);
  auto [it, inserted] = objects_.try_emplace(object.Key());
  ObjectState& state = it->second;
  if (inserted) state.generation = object.metadata.generation;
  if (state.waiting_since && ReadyFor(status, state.generation)) {
    sync_duration_->Observe(SecondsSince(*state.waiting_since, clock_.Monotonic()));
    state.waiting_since.reset();
  }
  Recount(state, inserted, object, status);
}

void PrometheusMetrics::Tally::Count(const ObjectState& state, int sign) {
  by_condition[0][state.ready_status] += sign;
  by_condition[1][state.vcpus_synced_status] += sign;
  by_condition[2][state.memory_synced_status] += sign;
  const size_t reason = state.ready_reason >= 0 ? static_cast<size_t>(state.ready_reason)
                        : state.ready_reason == ObjectState::kNoReason
                            ? std::size(reconciler::kReasons)
                            : std::size(reconciler::kReasons) + 1;
  by_reason[reason] += sign;
  drift += sign * state.vcpu_drift;
}

void PrometheusMetrics::Recount(ObjectState& state, bool inserted, const crd::ElasticVM& object,
                                const crd::ElasticVMStatus& status) {
  if (!inserted) tally_.Count(state, -1);
  Snapshot(object, status, &state);
  tally_.Count(state, 1);
}

void PrometheusMetrics::RefreshDerivedGauges() {
  static_assert(Tally::kStatuses == std::size(kConditionStatuses));
  constexpr size_t kStatuses = Tally::kStatuses;
  Tally tally;
  double unfinished = 0, longest = 0;
  {
    MutexLock lock(mu_);
    tally = tally_;
    auto now = clock_.Monotonic();
    for (auto start : in_flight_) unfinished += SecondsSince(start, now);
    if (!in_flight_.empty()) longest = SecondsSince(*in_flight_.begin(), now);
  }
  const char* const conditions[] = {"Ready", "VCPUsSynced", "MemorySynced"};
  for (size_t c = 0; c < std::size(conditions); ++c) {
    for (size_t s = 0; s < kStatuses; ++s) {
      elasticvms_->Add({{"condition", conditions[c]}, {"status", kConditionStatuses[s]}})
          .Set(static_cast<double>(tally.by_condition[c][s]));
    }
  }
  // Every known reason has a series (bounded, and a 0 graphs better than a gap).
  for (size_t r = 0; r < Tally::kReasonSlots; ++r) {
    const char* name = r < std::size(reconciler::kReasons)    ? reconciler::kReasons[r].name
                       : r == std::size(reconciler::kReasons) ? "None"
                                                              : "Other";
    elasticvms_ready_reason_->Add({{"reason", name}}).Set(static_cast<double>(tally.by_reason[r]));
  }
  vcpu_drift_->Set(static_cast<double>(tally.drift));
  queue_unfinished_->Set(unfinished);
  queue_longest_running_->Set(longest);
}

// --- ControllerMetrics

void PrometheusMetrics::ReconcileDone(std::string_view result, double seconds) {
  reconcile_total_->Add({{"result", Word(result)}}).Increment();
  reconcile_duration_->Observe(seconds);
}

void PrometheusMetrics::StatusWrite(std::string_view result) {
  status_writes_total_->Add({{"result", Word(result)}}).Increment();
}

void PrometheusMetrics::EventRecorded(std::string_view type, std::string_view reason) {
  events_total_->Add({{"type", Word(type)}, {"reason", Word(reason)}}).Increment();
}

void PrometheusMetrics::ActiveWorkers(int workers) { active_workers_->Set(workers); }

void PrometheusMetrics::Leading(bool leading) { leader_->Set(leading ? 1 : 0); }

// --- WorkQueueMetrics

void PrometheusMetrics::Added() { queue_adds_->Increment(); }

void PrometheusMetrics::Depth(size_t depth) { queue_depth_->Set(static_cast<double>(depth)); }

void PrometheusMetrics::QueueLatency(double seconds) {
  queue_duration_->Observe(seconds);
  MutexLock lock(mu_);
  in_flight_.insert(clock_.Monotonic());
}

void PrometheusMetrics::WorkDuration(double seconds) {
  work_duration_->Observe(seconds);
  MutexLock lock(mu_);
  if (in_flight_.empty()) return;
  auto started = clock_.Monotonic() - std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::duration<double>(seconds));
  auto it = in_flight_.lower_bound(started);
  if (it == in_flight_.end() ||
      (it != in_flight_.begin() && started - *std::prev(it) < *it - started)) {
    it = std::prev(it);
  }
  in_flight_.erase(it);
}

void PrometheusMetrics::Retried() { queue_retries_->Increment(); }

// --- reconciler::Metrics

void PrometheusMetrics::VcpuOperation(std::string_view operation, std::string_view result,
                                      double seconds) {
  const prometheus::Labels labels = {{"operation", Word(operation)}, {"result", Word(result)}};
  vcpu_duration_->Add(labels, kOperationBuckets).Observe(seconds);
  vcpu_total_->Add(labels).Increment();
}

void PrometheusMetrics::MemoryOperation(std::string_view operation, std::string_view result,
                                        double seconds) {
  const prometheus::Labels labels = {{"operation", Word(operation)}, {"result", Word(result)}};
  memory_duration_->Add(labels, kOperationBuckets).Observe(seconds);
  memory_total_->Add(labels).Increment();
}

void PrometheusMetrics::AutoscaleDecision(const reconciler::AutoscaleDecisionRecord& record) {
  autoscale_->Record(record);
}

void PrometheusMetrics::AutoscaleForgotten(const std::string& key) { autoscale_->Forget(key); }

// --- kube::InformerMetrics

namespace {
double UnixSeconds(const reconciler::Clock& clock) {
  return std::chrono::duration<double>(clock.Now().time_since_epoch()).count();
}
}  // namespace

void PrometheusMetrics::Listed(size_t objects, double seconds) {
  (void)seconds;
  informer_lists_->Increment();
  {
    MutexLock lock(mu_);
    if (++lists_ > 1) informer_relists_->Increment();
  }
  informer_cache_objects_->Set(static_cast<double>(objects));
  informer_last_activity_->Add({}).Set(UnixSeconds(clock_));
}

void PrometheusMetrics::WatchEvent(std::string_view type) {
  informer_events_->Add({{"type", Word(type)}}).Increment();
  informer_last_activity_->Add({}).Set(UnixSeconds(clock_));
}

void PrometheusMetrics::WatchRestarted(std::string_view why) {
  informer_reconnects_->Add({{"reason", Word(why)}}).Increment();
}

void PrometheusMetrics::CacheSize(size_t objects) {
  informer_cache_objects_->Set(static_cast<double>(objects));
}

void PrometheusMetrics::Received(std::string_view verb, size_t objects, size_t bytes) {
  const int i = verb == "list" ? 0 : 1;
  informer_received_objects_[i]->Increment(static_cast<double>(objects));
  informer_received_bytes_[i]->Increment(static_cast<double>(bytes));
}

// --- kube::ClientMetrics

void PrometheusMetrics::Request(std::string_view verb, int http_status, double seconds) {
  const std::string method = Word(verb);
  rest_requests_
      ->Add(
          {{"code", http_status > 0 ? std::to_string(http_status) : "<error>"}, {"method", method}})
      .Increment();
  rest_duration_->Add({{"verb", method}}, kRestBuckets).Observe(seconds);
}

// --- decorators

void MeteredSource::Start(ChangeHandler on_change) {
  inner_.Start([this, on_change = std::move(on_change)](const std::string& key) {
    std::optional<crd::ElasticVM> object = inner_.Get(key);
    metrics_.ObjectChanged(key, object ? &*object : nullptr);
    on_change(key);
  });
}

bool MeteredStatusWriter::WriteStatus(const crd::ElasticVM& object,
                                      const crd::ElasticVMStatus& status, std::string* error) {
  if (!inner_.WriteStatus(object, status, error)) return false;
  metrics_.StatusWritten(object, status);
  return true;
}

}  // namespace hotplug::controller

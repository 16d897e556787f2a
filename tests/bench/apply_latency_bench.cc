// Apply -> first per-vCPU call, and apply -> Ready=True (design §5), in-process: the real
// Kubernetes client, Informer, KubeStatusWriter, KubeEventRecorder and Controller against
// the test API server (tests/apiserver/fake_apiserver.py) holding --objects ElasticVMs,
// over the in-memory hypervisor with realistic latency (--observe-ms per Observe,
// --set-vcpu-ms per SetVcpu). A steady stream of spec changes (--rate per second for
// --seconds) patches random idle objects between 1 and 2 vCPUs, so each change is one plug
// or one unplug. Per change it records:
//   sent   the PATCH leaves this process (before the API server accepted it)
//   acked  the PATCH answer arrived (after the server stored it and queued the watch event)
//   seen   the informer decoded the watch event and handed the key to the controller
//   call   the fake hypervisor's SetVcpu was entered (before its latency)
//   ready  the status write with Ready=True for the new spec succeeded
// and prints percentiles of acked->call (the headline: from the server's acceptance), sent->
// call, seen->call (the operator alone) and sent->ready.
//
//   apply_latency_bench --server http://127.0.0.1:PORT [--objects 10000] [--rate 20]
//   apply_latency_bench --kubeconfig FILE ...   (a real kube-apiserver, HTTPS and a token)
//       [--seconds 60] [--workers 2] [--observe-ms 1] [--set-vcpu-ms 15] [--log-level info]
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "backends/fake/fake_hypervisor.h"
#include "controller/controller.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/event_recorder.h"
#include "controller/kube/informer.h"
#include "controller/kube/status_writer.h"
#include "controller/log.h"
#include "crd/codec.h"
#include "reconciler/clock.h"
#include "tests/bench/bench_support.h"

namespace hotplug::bench {
namespace {

using controller::kube::ApiResult;
using controller::kube::Client;
using TimePoint = SteadyClock::time_point;

std::string Name(int index) {
  char name[32];
  std::snprintf(name, sizeof(name), "vm-%06d", index);
  return name;
}

// The informer, with a hook called (on the informer's thread) before each change is handed
// to the controller.
class ObservedSource final : public controller::ObjectSource {
 public:
  using Hook = std::function<void(const std::string& key, TimePoint when)>;
  ObservedSource(controller::ObjectSource& inner, Hook hook) : inner_(inner), hook_(std::move(hook)) {}
  void Start(ChangeHandler on_change) override {
    inner_.Start([this, on_change = std::move(on_change)](const std::string& key) {
      hook_(key, SteadyClock::now());
      on_change(key);
    });
  }
  void Stop() override { inner_.Stop(); }
  bool HasSynced() const override { return inner_.HasSynced(); }
  std::optional<crd::ElasticVM> Get(const std::string& key) const override { return inner_.Get(key); }
  std::vector<std::string> Keys() const override { return inner_.Keys(); }

 private:
  controller::ObjectSource& inner_;
  Hook hook_;
};

// The status writer, with a hook called after each successful write.
class ObservedStatusWriter final : public controller::StatusWriter {
 public:
  using Hook = std::function<void(const crd::ElasticVM&, const crd::ElasticVMStatus&, TimePoint)>;
  ObservedStatusWriter(controller::StatusWriter& inner, Hook hook)
      : inner_(inner), hook_(std::move(hook)) {}
  bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                   std::string* error) override {
    TimePoint start = SteadyClock::now();
    bool ok = inner_.WriteStatus(object, status, error);
    TimePoint end = SteadyClock::now();
    {
      std::lock_guard lock(mu_);
      durations_ms_.push_back(MillisBetween(start, end));
    }
    if (ok) hook_(object, status, end);
    return ok;
  }
  // How long each write took (the PUT, and its conflict retries), since the last call.
  std::vector<double> TakeDurations() {
    std::lock_guard lock(mu_);
    return std::exchange(durations_ms_, {});
  }

 private:
  controller::StatusWriter& inner_;
  Hook hook_;
  std::mutex mu_;
  std::vector<double> durations_ms_;  // guarded by mu_
};

// The work queue's own timings: how long keys waited for a worker, how long passes took.
class QueueTimings final : public controller::ControllerMetrics, public controller::WorkQueueMetrics {
 public:
  void QueueLatency(double seconds) override { Add(&waited_ms_, seconds); }
  void WorkDuration(double seconds) override { Add(&worked_ms_, seconds); }
  controller::WorkQueueMetrics* QueueMetrics() override { return this; }
  // Samples since the last call: {queue wait, pass duration} in ms.
  std::pair<std::vector<double>, std::vector<double>> Take() {
    std::lock_guard lock(mu_);
    return {std::exchange(waited_ms_, {}), std::exchange(worked_ms_, {})};
  }

 private:
  void Add(std::vector<double>* samples, double seconds) {
    std::lock_guard lock(mu_);
    samples->push_back(seconds * 1000);
  }
  std::mutex mu_;
  std::vector<double> waited_ms_, worked_ms_;  // guarded by mu_
};

bool IsReadyAt(const crd::ElasticVMStatus& status, int64_t vcpus) {
  const crd::Condition* ready = crd::FindCondition(status, "Ready");
  return ready && ready->status == "True" && status.vcpus && status.vcpus->current == vcpus &&
         status.vcpus->desired == vcpus;
}

// One spec change in flight or done.
struct Change {
  int64_t target = 0;
  TimePoint sent, acked, seen, call, ready;
  bool has_acked = false, has_seen = false, has_call = false, has_ready = false;
};

class Tracker {
 public:
  explicit Tracker(int objects) : targets_(objects, 1) {}

  // Picks an object with no change in flight and records the change; -1 when all are busy.
  int Begin(std::mt19937& random, int64_t* target) {
    std::lock_guard lock(mu_);
    std::uniform_int_distribution<int> pick(0, static_cast<int>(targets_.size()) - 1);
    for (int attempt = 0; attempt < 100; ++attempt) {
      int index = pick(random);
      std::string name = Name(index);
      if (in_flight_.count(name)) continue;
      targets_[index] = targets_[index] == 1 ? 2 : 1;
      Change change;
      change.target = *target = targets_[index];
      change.sent = SteadyClock::now();
      in_flight_.emplace(name, change);
      return index;
    }
    return -1;
  }
  void Acked(const std::string& name, bool ok, TimePoint when) {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find(name);
    if (it == in_flight_.end()) return;
    if (!ok) {
      failed_++;
      in_flight_.erase(it);
      return;
    }
    it->second.acked = when;
    it->second.has_acked = true;
    FinishIfDoneLocked(it);
  }
  void Seen(const std::string& name, int64_t spec_vcpus, TimePoint when) {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find(name);
    if (it == in_flight_.end() || it->second.has_seen || spec_vcpus != it->second.target) return;
    it->second.seen = when;
    it->second.has_seen = true;
  }
  void Called(const std::string& domain, TimePoint when) {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find(domain);
    if (it == in_flight_.end() || it->second.has_call) return;
    it->second.call = when;
    it->second.has_call = true;
  }
  void Written(const std::string& name, const crd::ElasticVMStatus& status, TimePoint when) {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find(name);
    if (it == in_flight_.end() || !IsReadyAt(status, it->second.target)) return;
    it->second.ready = when;
    it->second.has_ready = true;
    FinishIfDoneLocked(it);
  }
  size_t InFlight() const {
    std::lock_guard lock(mu_);
    return in_flight_.size();
  }
  std::vector<Change> Done() const {
    std::lock_guard lock(mu_);
    return done_;
  }
  int failed() const {
    std::lock_guard lock(mu_);
    return failed_;
  }

 private:
  void FinishIfDoneLocked(std::unordered_map<std::string, Change>::iterator it) {
    if (!it->second.has_ready || !it->second.has_acked) return;
    done_.push_back(it->second);
    in_flight_.erase(it);
  }

  mutable std::mutex mu_;
  // Guarded by mu_.
  std::vector<int64_t> targets_;  // the vCPUs each object was last asked for
  std::unordered_map<std::string, Change> in_flight_;  // by object (= domain) name
  std::vector<Change> done_;
  int failed_ = 0;
};

// Creates vm-000000 .. vm-<objects-1> asking for 1 vCPU (existing ones are kept).
bool CreateObjects(Client& client, int objects, int threads) {
  std::atomic<int> next{0}, errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < objects; i = next++) {
        nlohmann::json object = {
            {"apiVersion", "hotplug.dev/v1alpha1"},
            {"kind", "ElasticVM"},
            {"metadata", {{"name", Name(i)}, {"namespace", "default"}}},
            {"spec", {{"cpu", {{"vcpus", 1}}}}}};
        ApiResult result =
            client.Post(controller::kube::ElasticVMsPath("default"), object.dump());
        if (!result.ok() && result.http_status != 409 && errors++ < 5) {
          std::fprintf(stderr, "apply_latency_bench: create %s: %s\n", Name(i).c_str(),
                       result.error.c_str());
        }
      }
    });
  }
  for (auto& thread : pool) thread.join();
  return errors.load() == 0;
}

nlohmann::json Summary(const std::vector<Change>& changes, TimePoint Change::*from,
                       TimePoint Change::*to, bool Change::*needs) {
  std::vector<double> samples;
  for (const auto& change : changes) {
    if (change.*needs) samples.push_back(MillisBetween(change.*from, change.*to));
  }
  return SummarizeMillis(samples);
}

void Print(const char* what, const nlohmann::json& summary) {
  std::printf("  %-22s n=%-5d p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", what,
              summary["n"].get<int>(), summary["p50_ms"].get<double>(),
              summary["p90_ms"].get<double>(), summary["p99_ms"].get<double>(),
              summary["max_ms"].get<double>());
}

}  // namespace
}  // namespace hotplug::bench

int main(int argc, char** argv) {
  using namespace hotplug;
  using bench::SteadyClock;
  bench::Flags flags(argc, argv);
  hotplug::log::Level level = hotplug::log::Level::kInfo;
  hotplug::log::ParseLevel(flags.Text("log-level", "info"), &level);
  hotplug::log::SetLevel(level);
  std::string server = flags.Text("server", "");
  std::string kubeconfig = flags.Text("kubeconfig", "");
  if (server.empty() == kubeconfig.empty()) {
    std::fprintf(stderr, "usage: apply_latency_bench --server URL | --kubeconfig FILE "
                         "[--objects N] ...\n");
    return 2;
  }
  const int objects = static_cast<int>(flags.Int("objects", 10000));
  const double rate = flags.Double("rate", 20);
  const double seconds = flags.Double("seconds", 60);
  const int workers = static_cast<int>(flags.Int("workers", 2));
  const auto observe_latency = std::chrono::microseconds(
      static_cast<int64_t>(flags.Double("observe-ms", 1) * 1000));
  const auto set_vcpu_latency = std::chrono::microseconds(
      static_cast<int64_t>(flags.Double("set-vcpu-ms", 15) * 1000));

  // As main.cc sizes it: the watch, the workers' writes, events.
  controller::kube::InitHttpThreadPool(static_cast<size_t>(4 + workers));
  controller::kube::Config config;
  config.server = server;
  std::string config_error;
  if (!kubeconfig.empty() &&
      !controller::kube::LoadKubeconfigFile(kubeconfig, &config, &config_error)) {
    std::fprintf(stderr, "apply_latency_bench: %s\n", config_error.c_str());
    return 2;
  }
  controller::kube::Client::Options client_options;
  client_options.request_timeout = std::chrono::seconds(15);
  controller::kube::Client client(config, client_options);

  auto load_start = SteadyClock::now();
  if (!bench::CreateObjects(client, objects, 4)) return 1;
  double load_seconds = std::chrono::duration<double>(SteadyClock::now() - load_start).count();
  std::printf("apply latency: %d ElasticVMs in the API server (created in %.1f s), %d "
              "workers, Observe %.1f ms, SetVcpu %.1f ms\n",
              objects, load_seconds, workers, observe_latency.count() / 1000.0,
              set_vcpu_latency.count() / 1000.0);

  bench::Tracker tracker(objects);
  backends::fake::FakeHypervisor fake;
  for (int i = 0; i < objects; ++i) {
    backends::fake::DomainSpec domain;
    domain.name = bench::Name(i);
    domain.maximum_vcpus = 8;
    domain.current_vcpus = 1;
    fake.AddDomain(domain);
  }
  fake.SetLatency(observe_latency, set_vcpu_latency);
  bench::TimedHypervisor timed(fake, [&](const std::string& domain, unsigned, bool,
                                         bench::TimePoint when) { tracker.Called(domain, when); });

  controller::kube::Informer::Options informer_options;
  informer_options.ns = "default";
  controller::kube::Informer informer(client, informer_options);
  bench::ObservedSource source(informer, [&](const std::string& key, bench::TimePoint when) {
    std::optional<crd::ElasticVM> object = informer.Get(key);
    if (object && object->spec.cpu.vcpus) {
      tracker.Seen(object->metadata.name, *object->spec.cpu.vcpus, when);
    }
  });
  controller::kube::KubeStatusWriter kube_writer(client, &informer);
  std::mutex ready_mu;
  std::unordered_set<std::string> ready_keys;  // guarded by ready_mu: converged at start
  bench::ObservedStatusWriter writer(
      kube_writer, [&](const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                       bench::TimePoint when) {
        if (bench::IsReadyAt(status, 1)) {
          std::lock_guard lock(ready_mu);
          ready_keys.insert(object.Key());
        }
        tracker.Written(object.metadata.name, status, when);
      });
  controller::kube::KubeEventRecorder events(client, {.component = "hotplug-operator",
                                                      .host = "bench",
                                                      .queue_limit = 1000,
                                                      .remembered = 4096});
  reconciler::SystemClock clock;
  controller::Controller::Options options;
  options.workers = workers;
  bench::QueueTimings timings;
  options.metrics = &timings;
  controller::Controller controller(source, writer, events, timed, clock, options);

  // Start and converge: every object gets its first status (Ready=True at 1 vCPU).
  auto start = SteadyClock::now();
  controller.Start();
  controller.StartWorkers();
  auto deadline = start + std::chrono::seconds(900);
  while (!controller.HasSynced() && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  double synced_seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  auto converged = [&] {
    std::lock_guard lock(ready_mu);
    return ready_keys.size() >= static_cast<size_t>(objects);
  };
  // Objects that already had a status from an earlier run are not written again. Then wait
  // for the queue to settle (the watch echoes of those writes), so the stream starts on an
  // idle operator.
  while (SteadyClock::now() < deadline && !converged() &&
         !(controller.queue().Len() == 0 && controller.passes() >= objects)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int64_t passes = -1; SteadyClock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (controller.queue().Len() == 0 && controller.passes() == passes) break;
    passes = controller.passes();
  }
  double converged_seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  std::printf("  start: cache synced in %.2f s, %lld passes and %lld status writes done in %.1f s\n",
              synced_seconds, static_cast<long long>(controller.passes()),
              static_cast<long long>(controller.status_writes()), converged_seconds);

  writer.TakeDurations();  // the start's writes are not part of the stream's figures
  timings.Take();

  // The stream of changes, on a fixed schedule.
  std::mt19937 random(42);
  auto stream_start = SteadyClock::now();
  auto period = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(1.0 / rate));
  int sent = 0, skipped = 0;
  for (auto next = stream_start; next < stream_start + std::chrono::duration_cast<SteadyClock::duration>(
                                                 std::chrono::duration<double>(seconds));
       next += period) {
    std::this_thread::sleep_until(next);
    int64_t target = 0;
    int index = tracker.Begin(random, &target);
    if (index < 0) {
      skipped++;
      continue;
    }
    std::string name = bench::Name(index);
    nlohmann::json patch = {{"spec", {{"cpu", {{"vcpus", target}}}}}};
    controller::kube::ApiResult result = client.Patch(controller::kube::ElasticVMPath("default", name), patch.dump());
    tracker.Acked(name, result.ok(), SteadyClock::now());
    if (!result.ok()) std::fprintf(stderr, "patch %s: %s\n", name.c_str(), result.error.c_str());
    sent++;
  }
  auto drain_deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (tracker.InFlight() > 0 && SteadyClock::now() < drain_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double stream_seconds = std::chrono::duration<double>(SteadyClock::now() - stream_start).count();
  size_t unfinished = tracker.InFlight();
  controller.Stop(SteadyClock::now() + std::chrono::seconds(10));
  events.Stop();

  nlohmann::json status_writes = bench::SummarizeMillis(writer.TakeDurations());
  auto [waited, worked] = timings.Take();
  nlohmann::json queue_wait = bench::SummarizeMillis(waited);
  nlohmann::json pass_duration = bench::SummarizeMillis(worked);
  std::vector<bench::Change> done = tracker.Done();
  using C = bench::Change;
  nlohmann::json acked_call = bench::Summary(done, &C::acked, &C::call, &C::has_call);
  nlohmann::json sent_call = bench::Summary(done, &C::sent, &C::call, &C::has_call);
  nlohmann::json seen_call = bench::Summary(done, &C::seen, &C::call, &C::has_seen);
  nlohmann::json sent_seen = bench::Summary(done, &C::sent, &C::seen, &C::has_seen);
  nlohmann::json sent_acked = bench::Summary(done, &C::sent, &C::acked, &C::has_acked);
  nlohmann::json sent_ready = bench::Summary(done, &C::sent, &C::ready, &C::has_ready);
  nlohmann::json acked_ready = bench::Summary(done, &C::acked, &C::ready, &C::has_ready);
  std::printf("  %d changes sent at %.1f/s (%d skipped: no idle object), %zu done, %zu "
              "unfinished, %d failed\n",
              sent, rate, skipped, done.size(), unfinished, tracker.failed());
  bench::Print("acked -> SetVcpu", acked_call);
  bench::Print("sent -> SetVcpu", sent_call);
  bench::Print("seen -> SetVcpu", seen_call);
  bench::Print("sent -> seen (watch)", sent_seen);
  bench::Print("sent -> acked (PATCH)", sent_acked);
  bench::Print("sent -> Ready=True", sent_ready);
  bench::Print("acked -> Ready=True", acked_ready);
  bench::Print("status write (PUT)", status_writes);
  bench::Print("key waiting in queue", queue_wait);
  bench::Print("pass (Get..Done)", pass_duration);
  bench::Report({{"bench", "apply_latency"},
                 {"objects", objects},
                 {"workers", workers},
                 {"rate_per_second", rate},
                 {"seconds", stream_seconds},
                 {"observe_ms", observe_latency.count() / 1000.0},
                 {"set_vcpu_ms", set_vcpu_latency.count() / 1000.0},
                 {"load_seconds", load_seconds},
                 {"synced_seconds", synced_seconds},
                 {"converged_seconds", converged_seconds},
                 {"sent", sent},
                 {"done", done.size()},
                 {"unfinished", unfinished},
                 {"failed", tracker.failed()},
                 {"acked_to_call", acked_call},
                 {"sent_to_call", sent_call},
                 {"seen_to_call", seen_call},
                 {"sent_to_seen", sent_seen},
                 {"sent_to_acked", sent_acked},
                 {"sent_to_ready", sent_ready},
                 {"acked_to_ready", acked_ready},
                 {"status_write", status_writes},
                 {"queue_wait", queue_wait},
                 {"pass_duration", pass_duration},
                 {"passes", controller.passes()},
                 {"status_writes", controller.status_writes()}});
  return unfinished == 0 && tracker.failed() == 0 ? 0 : 1;
}

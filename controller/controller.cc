#include "controller/controller.h"

#include <pthread.h>

#include <exception>

#include "controller/log.h"

namespace hotplug::controller {
namespace {

WorkQueue::Options QueueOptions(const Controller::Options& options) {
  WorkQueue::Options queue_options;
  queue_options.rate_limiter = options.rate_limiter;
  queue_options.metrics = options.metrics ? options.metrics->QueueMetrics() : nullptr;
  return queue_options;
}

const char* EventTypeName(reconciler::Event::Type type) {
  return type == reconciler::Event::Type::kWarning ? "Warning" : "Normal";
}

void LogSteps(const std::string& key, const std::vector<reconciler::StepRecord>& steps) {
  for (const auto& step : steps) {
    std::string id = step.id >= 0 ? std::to_string(step.id) : std::to_string(step.bytes) + "B";
    if (step.result.ok()) {
      log::Info("step done", {{"object", key},
                              {"resource", step.resource},
                              {"operation", step.operation},
                              {"id", id}});
    } else {
      log::Warn("step failed", {{"object", key},
                                {"resource", step.resource},
                                {"operation", step.operation},
                                {"id", id},
                                {"error", step.result.ToString()}});
    }
  }
}

}  // namespace

Controller::Controller(ObjectSource& source, StatusWriter& status_writer, EventRecorder& events,
                       backends::Hypervisor& hypervisor, const reconciler::Clock& clock,
                       Options options)
    : source_(source),
      events_(events),
      hypervisor_(hypervisor),
      clock_(clock),
      options_(std::move(options)),
      metrics_(options_.metrics ? options_.metrics : &no_metrics_),
      queue_(clock, QueueOptions(options_)),
      owned_domains_(options_.reconciler.claim_manager),
      status_sync_(source, status_writer, *metrics_),
      autoscaler_(options_.autoscale) {
  options_.reconciler.stop_requested = &stop_requested_;
  options_.reconciler.claim_is_stale = [this](const backends::DomainClaim& claim,
                                              const std::string& domain) {
    return ClaimIsStale(claim, domain);
  };
  options_.reconciler.autoscaler = &autoscaler_;
}

Controller::~Controller() { Stop(std::chrono::steady_clock::now() + std::chrono::seconds(30)); }

void Controller::Start() {
  {
    MutexLock lock(stop_mu_);
    if (started_) return;
    started_ = true;
  }
  hypervisor_.SetEventSink([this](const std::string& domain) { OnDomainEvent(domain); });
  source_.Start([this](const std::string& key) { OnChange(key); });
  if (options_.resync_period.count() > 0) {
    resync_thread_ = std::thread([this] { Resync(); });
  }
}

void Controller::StartWorkers() {
  if (!workers_.Start(options_.workers, "worker", [this](int) { Worker(); })) return;
  metrics_->ActiveWorkers(options_.workers);
  log::Info("workers started", {{"workers", std::to_string(options_.workers)}});
}

bool Controller::Stop(std::chrono::steady_clock::time_point deadline) {
  {
    MutexLock lock(stop_mu_);
    if (stopping_) return workers_.running() == 0;
    stopping_ = true;
  }
  workers_.Close();
  stop_cv_.notify_all();
  stop_requested_ = true;
  // Keys still queued are dropped (a restart lists everything again); the passes in flight
  // finish their step and write their status.
  queue_.ShutDown();
  bool drained = workers_.Wait(deadline);
  if (!drained) {
    log::Error("workers did not finish before the shutdown deadline",
               {{"busy", std::to_string(workers_.running())}});
  }
  if (resync_thread_.joinable()) resync_thread_.join();
  hypervisor_.SetEventSink(nullptr);
  source_.Stop();
  metrics_->ActiveWorkers(0);
  return drained;
}

void Controller::OnChange(const std::string& key) {
  std::optional<crd::ElasticVM> object = source_.Get(key);
  domain_index_.Set(key, object ? std::optional(object->EffectiveDomain()) : std::nullopt);
  queue_.Add(key);
}

void Controller::OnDomainEvent(const std::string& domain) {
  for (const auto& key : domain_index_.KeysNaming(domain)) {
    log::Debug("domain event", {{"domain", domain}, {"object", key}});
    queue_.Add(key);
  }
}

void Controller::Resync() {
  pthread_setname_np(pthread_self(), "resync");
  MutexLock lock(stop_mu_);
  while (!lock.WaitFor(stop_cv_, options_.resync_period,
                       [&]() REQUIRES(stop_mu_) { return stopping_; })) {
    lock.Unlock();
    std::vector<std::string> keys = source_.Keys();
    log::Debug("resync", {{"objects", std::to_string(keys.size())}});
    for (const auto& key : keys) queue_.Add(key);
    lock.Lock();
  }
}

void Controller::Worker() {
  reconciler::Reconciler reconciler(hypervisor_, clock_, options_.reconciler,
                                    metrics_->ReconcilerMetrics());
  while (std::optional<std::string> key = queue_.Get()) {
    if (!stop_requested_.load()) {
      try {
        Process(reconciler, *key);
      } catch (const std::exception& e) {
        // A bug or an unexpected library error: keep the worker, retry the key later.
        log::Error("reconcile failed unexpectedly", {{"object", *key}, {"error", e.what()}});
        queue_.AddRateLimited(*key);
        metrics_->ReconcileDone("error", 0);
      }
    }
    queue_.Done(*key);
  }
}

void Controller::Process(reconciler::Reconciler& reconciler, const std::string& key) {
  const auto start = clock_.Monotonic();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(clock_.Monotonic() - start).count();
  };
  std::optional<crd::ElasticVM> object = source_.Get(key);
  ReleaseClaimLeftBehind(key, object ? std::optional(object->EffectiveDomain()) : std::nullopt);
  if (!object) {
    // Deleted: nothing to change, nothing to report; forget its backoff.
    queue_.Forget(key);
    status_sync_.Forget(key);
    autoscaler_.Forget(key, metrics_->ReconcilerMetrics());  // here: after its last pass
    metrics_->ReconcileDone("deleted", seconds_since_start());
    source_.Released(key);
    return;
  }
  const std::string domain = object->EffectiveDomain();
  if (!domain_locks_.TryLock(domain, key)) {
    // Another object's pass is on this domain; this key is queued again when it ends.
    metrics_->ReconcileDone("skipped", seconds_since_start());
    return;
  }
  struct Unlock {  // also when the pass throws
    Controller& controller;
    const std::string& domain;
    ~Unlock() {
      for (const auto& waiting : controller.domain_locks_.Unlock(domain)) {
        controller.queue_.Add(waiting);
      }
    }
  } unlock{*this, domain};
  passes_++;
  StatusSync::Writes writes = status_sync_.Begin(key, *object);
  reconciler::Result result = reconciler.Reconcile(
      writes.input(),
      [&](const crd::ElasticVMStatus& in_progress) { writes.Progress(in_progress); });
  owned_domains_.Record(key, domain, result.claim, result.claim_known);
  RecordEvents(*object, result.events);
  LogSteps(key, result.steps);
  const bool written = writes.Finish(result.status);
  Requeue(key, result, written, seconds_since_start());
}

void Controller::ReleaseClaimLeftBehind(const std::string& key,
                                        const std::optional<std::string>& domain) {
  std::optional<OwnedDomains::Owned> owned = owned_domains_.TakeIfNotNaming(key, domain);
  if (!owned) return;
  backends::Status released = hypervisor_.ReleaseDomain(owned->domain, owned->claim);
  if (released.ok()) {
    log::Info("released domain", {{"object", key}, {"domain", owned->domain}});
  } else {
    // Another claimant takes it over once it finds the claim's owner gone (ClaimIsStale).
    log::Warn("could not release domain",
              {{"object", key}, {"domain", owned->domain}, {"error", released.ToString()}});
  }
  for (const auto& other : domain_index_.KeysNaming(owned->domain)) queue_.Add(other);
}

bool Controller::ClaimIsStale(const backends::DomainClaim& claim, const std::string& domain) const {
  if (claim.manager != options_.reconciler.claim_manager || !source_.HasSynced()) return false;
  std::optional<crd::ElasticVM> owner = source_.Get(claim.owner);
  return !owner || owner->metadata.uid != claim.uid || owner->EffectiveDomain() != domain;
}

void Controller::RecordEvents(const crd::ElasticVM& object,
                              const std::vector<reconciler::Event>& events) {
  for (const auto& event : events) {
    if (reconciler::IsAutoscaleEvent(event.reason)) {
      log::Info("autoscale",
                {{"object", object.Key()}, {"reason", event.reason}, {"message", event.message}});
    }
    events_.Record(object, event);
    metrics_->EventRecorded(EventTypeName(event.type), event.reason);
  }
}

void Controller::Requeue(const std::string& key, const reconciler::Result& result, bool written,
                         double seconds) {
  if (!written || result.requeue_with_backoff) {
    queue_.AddRateLimited(key);
    metrics_->ReconcileDone(!written ? "error" : "requeue", seconds);
    return;
  }
  queue_.Forget(key);
  if (result.requeue_after.count() > 0) queue_.AddAfter(key, result.requeue_after);
  metrics_->ReconcileDone(result.requeue_after.count() > 0 ? "requeue" : "success", seconds);
}

}  // namespace hotplug::controller

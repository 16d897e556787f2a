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

}  // namespace

Controller::Controller(ObjectSource& source, StatusWriter& status_writer, EventRecorder& events,
                       backends::Hypervisor& hypervisor, const reconciler::Clock& clock,
                       Options options)
    : source_(source),
      status_writer_(status_writer),
      events_(events),
      hypervisor_(hypervisor),
      clock_(clock),
      options_(std::move(options)),
      metrics_(options_.metrics ? options_.metrics : &no_metrics_),
      queue_(clock, QueueOptions(options_)) {
  options_.reconciler.stop_requested = &stop_requested_;
}

Controller::~Controller() {
  Stop(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void Controller::Start() {
  {
    std::lock_guard lock(stop_mu_);
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
  std::lock_guard lock(stop_mu_);
  if (workers_started_ || stopping_) return;
  workers_started_ = true;
  for (int i = 0; i < options_.workers; ++i) {
    workers_running_++;
    workers_.emplace_back([this, i] { Worker(i); });
  }
  metrics_->ActiveWorkers(options_.workers);
  log::Info("workers started", {{"workers", std::to_string(options_.workers)}});
}

bool Controller::Stop(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard lock(stop_mu_);
    if (stopping_) return workers_running_.load() == 0;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  stop_requested_ = true;
  // Keys still queued are dropped (a restart lists everything again); the passes in flight
  // finish their step and write their status.
  queue_.ShutDown();
  bool drained;
  {
    std::unique_lock lock(stop_mu_);
    drained = stop_cv_.wait_until(lock, deadline, [&] { return workers_running_.load() == 0; });
  }
  if (drained) {
    for (auto& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
  } else {
    log::Error("workers did not finish before the shutdown deadline",
               {{"busy", std::to_string(workers_running_.load())}});
  }
  if (resync_thread_.joinable()) resync_thread_.join();
  hypervisor_.SetEventSink(nullptr);
  source_.Stop();
  metrics_->ActiveWorkers(0);
  return drained;
}

void Controller::OnChange(const std::string& key) {
  std::optional<crd::ElasticVM> object = source_.Get(key);
  std::optional<size_t> domain_hash;
  if (object) domain_hash = std::hash<std::string>{}(object->EffectiveDomain());
  {
    std::lock_guard lock(index_mu_);
    auto it = domain_hash_of_key_.find(key);
    if (it != domain_hash_of_key_.end() && it->second != domain_hash) {
      auto range = keys_of_domain_hash_.equal_range(it->second);
      for (auto entry = range.first; entry != range.second; ++entry) {
        if (entry->second == &it->first) {
          keys_of_domain_hash_.erase(entry);
          break;
        }
      }
      domain_hash_of_key_.erase(it);
      it = domain_hash_of_key_.end();
    }
    if (domain_hash && it == domain_hash_of_key_.end()) {
      it = domain_hash_of_key_.emplace(key, *domain_hash).first;
      keys_of_domain_hash_.emplace(*domain_hash, &it->first);
    }
  }
  queue_.Add(key);
}

void Controller::OnDomainEvent(const std::string& domain) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(index_mu_);
    auto range = keys_of_domain_hash_.equal_range(std::hash<std::string>{}(domain));
    for (auto it = range.first; it != range.second; ++it) keys.push_back(*it->second);
  }
  for (const auto& key : keys) {
    log::Debug("domain event", {{"domain", domain}, {"object", key}});
    queue_.Add(key);
  }
}

void Controller::Resync() {
  pthread_setname_np(pthread_self(), "resync");
  std::unique_lock lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, options_.resync_period, [&] { return stopping_; })) {
    lock.unlock();
    std::vector<std::string> keys = source_.Keys();
    log::Debug("resync", {{"objects", std::to_string(keys.size())}});
    for (const auto& key : keys) queue_.Add(key);
    lock.lock();
  }
}

void Controller::Worker(int index) {
  std::string name = "worker-" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
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
  {
    std::lock_guard lock(stop_mu_);
    workers_running_--;
  }
  stop_cv_.notify_all();
}

bool Controller::Write(const std::string& key, const crd::ElasticVM& object,
                       const crd::ElasticVMStatus& status) {
  std::string error;
  if (status_writer_.WriteStatus(object, status, &error)) {
    status_writes_++;
    metrics_->StatusWrite("success");
    return true;
  }
  status_write_failures_++;
  metrics_->StatusWrite("failure");
  log::Warn("status write failed", {{"object", key}, {"error", error}});
  return false;
}

void Controller::Process(reconciler::Reconciler& reconciler, const std::string& key) {
  auto start = clock_.Monotonic();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(clock_.Monotonic() - start).count();
  };
  std::optional<crd::ElasticVM> object = source_.Get(key);
  if (!object) {
    // Deleted: nothing to change, nothing to report; forget its backoff.
    queue_.Forget(key);
    {
      std::lock_guard lock(unwritten_mu_);
      unwritten_.erase(key);
    }
    metrics_->ReconcileDone("deleted", seconds_since_start());
    source_.Released(key);
    return;
  }
  passes_++;
  // The pass starts from the status the last pass computed when its write failed; the
  // decision to write is still made against what the API holds (object->status). The copy
  // is made only then: the pass is a few microseconds and a copy of the object is not.
  std::optional<crd::ElasticVM> with_unwritten;
  {
    std::lock_guard lock(unwritten_mu_);
    auto it = unwritten_.find(key);
    if (it != unwritten_.end() && it->second.first == object->metadata.uid) {
      with_unwritten = *object;
      with_unwritten->status = it->second.second;
    }
  }
  const crd::ElasticVM& input = with_unwritten ? *with_unwritten : *object;
  std::optional<crd::ElasticVMStatus> written;  // what this pass already wrote
  bool write_failed = false;
  reconciler::Result result =
      reconciler.Reconcile(input, [&](const crd::ElasticVMStatus& in_progress) {
        if (in_progress == object->status) return;
        if (Write(key, *object, in_progress)) {
          written = in_progress;
        } else {
          write_failed = true;
        }
      });

  for (const auto& event : result.events) {
    events_.Record(*object, event);
    metrics_->EventRecorded(EventTypeName(event.type), event.reason);
  }
  for (const auto& step : result.steps) {
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

  // Write the status when it differs from what the object (or this pass) last said. The
  // source may already hold the version our in-progress write produced.
  const crd::ElasticVMStatus& previous = written ? *written : object->status;
  bool final_write_failed = false;
  if (result.status != previous) {
    crd::ElasticVM base = *object;
    if (written) {
      std::optional<crd::ElasticVM> latest = source_.Get(key);
      if (latest && latest->metadata.uid == object->metadata.uid) base = std::move(*latest);
    }
    if (!Write(key, base, result.status)) write_failed = final_write_failed = true;
  }
  {
    std::lock_guard lock(unwritten_mu_);
    if (final_write_failed) {
      unwritten_[key] = {object->metadata.uid, result.status};
    } else if (!unwritten_.empty()) {
      unwritten_.erase(key);
    }
  }

  if (write_failed || result.requeue_with_backoff) {
    queue_.AddRateLimited(key);
    metrics_->ReconcileDone(write_failed ? "error" : "requeue", seconds_since_start());
    return;
  }
  queue_.Forget(key);
  if (result.requeue_after.count() > 0) queue_.AddAfter(key, result.requeue_after);
  metrics_->ReconcileDone(result.requeue_after.count() > 0 ? "requeue" : "success",
                          seconds_since_start());
}

}  // namespace hotplug::controller

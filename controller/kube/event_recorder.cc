#include "controller/kube/event_recorder.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "controller/log.h"
#include "reconciler/clock.h"

namespace hotplug::controller::kube {

using json = nlohmann::json;

KubeEventRecorder::KubeEventRecorder(Client& client, Options options)
    : client_(client), options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

KubeEventRecorder::~KubeEventRecorder() { Stop(); }

void KubeEventRecorder::Record(const crd::ElasticVM& object, const reconciler::Event& event) {
  Pending pending{object.metadata.namespace_,
                  object.metadata.name,
                  object.metadata.uid,
                  object.metadata.resource_version,
                  event,
                  reconciler::FormatRfc3339(std::chrono::system_clock::now())};
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    if (queue_.size() >= options_.queue_limit) {
      log::Warn("event dropped: too many waiting",
                {{"object", object.Key()}, {"reason", event.reason}});
      return;
    }
    queue_.push_back(std::move(pending));
  }
  cv_.notify_all();
}

void KubeEventRecorder::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool KubeEventRecorder::Flush(std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(mu_);
  return lock.WaitUntil(cv_, deadline, [&]() REQUIRES(mu_) { return queue_.empty() && !sending_; });
}

void KubeEventRecorder::Run() {
  pthread_setname_np(pthread_self(), "event-recorder");
  MutexLock lock(mu_);
  while (true) {
    lock.Wait(cv_, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
    if (stopping_) {
      // Flush() is the way to drain; Stop must not wait on an API that may be down.
      if (!queue_.empty()) {
        log::Warn("events dropped at shutdown", {{"count", std::to_string(queue_.size())}});
        queue_.clear();
      }
      return;
    }
    Pending pending = std::move(queue_.front());
    queue_.pop_front();
    sending_ = true;
    auto backoff = options_.retry_initial;
    for (int attempt = 1;; ++attempt) {
      lock.Unlock();
      const bool done = Send(pending);
      lock.Lock();
      if (done || stopping_) break;
      if (attempt >= options_.max_attempts) {
        log::Warn("event dropped after retries",
                  {{"object", pending.ns + "/" + pending.name}, {"reason", pending.event.reason}});
        break;
      }
      // Wait out the backoff, but wake at once for Stop().
      lock.WaitFor(cv_, backoff, [&]() REQUIRES(mu_) { return stopping_; });
      if (stopping_) break;
      backoff = std::min(backoff * 2, options_.retry_max);
    }
    sending_ = false;
    cv_.notify_all();
  }
}

namespace {

bool Retryable(const ApiResult& result) {
  return result.http_status == 0 || result.http_status == 429 || result.http_status >= 500;
}

}  // namespace

bool KubeEventRecorder::Send(const Pending& pending) {
  const char* type = pending.event.type == reconciler::Event::Type::kWarning ? "Warning" : "Normal";
  std::string identity = pending.ns + "/" + pending.name + "/" + pending.uid + "/" + type + "/" +
                         pending.event.reason + "/" + pending.event.message;
  auto known = sent_.find(identity);
  if (known != sent_.end()) {
    json patch = {{"count", known->second.count + 1}, {"lastTimestamp", pending.timestamp}};
    ApiResult result = client_.Patch(EventsPath(pending.ns) + "/" + known->second.event_name,
                                     patch.dump(), "application/merge-patch+json");
    if (result.ok()) {
      known->second.count++;
      return true;
    }
    if (!result.not_found()) {
      log::Warn("event not aggregated",
                {{"error", result.error}, {"reason", pending.event.reason}});
      return !Retryable(result);
    }
    // The Event expired (events have a TTL): create a fresh one.
    sent_.erase(known);
  }
  return Create(pending, type, identity);
}

bool KubeEventRecorder::Create(const Pending& pending, const char* type,
                               const std::string& identity) {
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  char suffix[40];
  std::snprintf(
      suffix, sizeof(suffix), ".%llx",
      static_cast<unsigned long long>(now_ns) + static_cast<unsigned long long>(sequence_++));
  std::string event_name = pending.name + suffix;
  json body = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"name", event_name}, {"namespace", pending.ns}}},
      {"involvedObject",
       {{"apiVersion", "hotplug.dev/v1alpha1"},
        {"kind", "ElasticVM"},
        {"name", pending.name},
        {"namespace", pending.ns},
        {"uid", pending.uid},
        {"resourceVersion", pending.resource_version}}},
      {"reason", pending.event.reason},
      {"message", pending.event.message},
      {"type", type},
      {"source", {{"component", options_.component}, {"host", options_.host}}},
      {"firstTimestamp", pending.timestamp},
      {"lastTimestamp", pending.timestamp},
      {"count", 1},
      {"reportingComponent", options_.component},
      {"reportingInstance", options_.host},
  };
  if (options_.host.empty()) body["source"].erase("host");
  ApiResult result = client_.Post(EventsPath(pending.ns), body.dump());
  if (!result.ok()) {
    log::Warn("event not recorded", {{"error", result.error}, {"reason", pending.event.reason}});
    return !Retryable(result);
  }
  sent_[identity] = Sent{event_name, 1};
  sent_order_.push_back(identity);
  while (sent_order_.size() > options_.remembered) {
    sent_.erase(sent_order_.front());
    sent_order_.pop_front();
  }
  return true;
}

}  // namespace hotplug::controller::kube

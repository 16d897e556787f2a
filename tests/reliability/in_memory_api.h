// An API server in memory for the in-process reliability tests (fault_inprocess_test.cc,
// soak.cc): the controller's ObjectSource, StatusWriter and EventRecorder over one map of
// ElasticVMs, with injectable status-write failures. Header-only; thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "controller/source.h"
#include "crd/elasticvm.h"
#include "reconciler/reconciler.h"

namespace hotplug::reliability {

class InMemoryApi final : public controller::ObjectSource,
                          public controller::StatusWriter,
                          public controller::EventRecorder {
 public:
  // --- ObjectSource ---
  // Like an informer's first list: every object already stored is announced.
  void Start(ChangeHandler on_change) override {
    std::vector<std::string> keys = Keys();
    {
      std::lock_guard lock(mu_);
      on_change_ = on_change;
    }
    for (const auto& key : keys) on_change(key);
  }
  void Stop() override {
    std::lock_guard lock(mu_);
    on_change_ = nullptr;
  }
  bool HasSynced() const override { return true; }
  std::optional<crd::ElasticVM> Get(const std::string& key) const override {
    std::lock_guard lock(mu_);
    auto found = objects_.find(key);
    if (found == objects_.end()) return std::nullopt;
    return found->second;
  }
  std::vector<std::string> Keys() const override {
    std::lock_guard lock(mu_);
    std::vector<std::string> keys;
    keys.reserve(objects_.size());
    for (const auto& entry : objects_) keys.push_back(entry.first);
    return keys;
  }

  // --- StatusWriter: a failing write leaves the stored status as it was. ---
  bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                   std::string* error) override {
    std::lock_guard lock(mu_);
    status_write_attempts_++;
    if (failing_writes_ > 0) {
      failing_writes_--;
      status_write_failures_++;
      *error = "InternalError: injected by the test";
      return false;
    }
    auto found = objects_.find(object.Key());
    if (found == objects_.end()) return true;  // deleted meanwhile: nothing to write
    found->second.status = status;
    found->second.metadata.resource_version = std::to_string(++resource_version_);
    return true;
  }

  // --- EventRecorder ---
  void Record(const crd::ElasticVM& object, const reconciler::Event& event) override {
    std::lock_guard lock(mu_);
    events_by_key_[object.Key()][event.reason]++;
    events_recorded_++;
  }

  // --- what a test does to the "cluster" ---
  // Creates or replaces the object; a spec change bumps its generation, like kube.
  void Apply(crd::ElasticVM object) {
    ChangeHandler notify;
    {
      std::lock_guard lock(mu_);
      auto found = objects_.find(object.Key());
      if (found != objects_.end()) {
        object.status = found->second.status;
        object.metadata.uid = found->second.metadata.uid;
        object.metadata.generation = found->second.metadata.generation + 1;
      } else {
        object.metadata.uid = "uid-" + object.metadata.name + "-" +
                              std::to_string(resource_version_ + 1);
        object.metadata.generation = 1;
      }
      object.metadata.resource_version = std::to_string(++resource_version_);
      objects_[object.Key()] = object;
      notify = on_change_;
    }
    if (notify) notify(object.Key());
  }
  void Remove(const std::string& key) {
    ChangeHandler notify;
    {
      std::lock_guard lock(mu_);
      objects_.erase(key);
      events_by_key_.erase(key);
      notify = on_change_;
    }
    if (notify) notify(key);
  }
  void FailNextStatusWrites(int count) {
    std::lock_guard lock(mu_);
    failing_writes_ = count;
  }
  // How many Events with `reason` were recorded about `key`.
  int EventCount(const std::string& key, const std::string& reason) const {
    std::lock_guard lock(mu_);
    auto found = events_by_key_.find(key);
    if (found == events_by_key_.end()) return 0;
    auto count = found->second.find(reason);
    return count == found->second.end() ? 0 : count->second;
  }
  int64_t status_write_attempts() const {
    std::lock_guard lock(mu_);
    return status_write_attempts_;
  }
  int64_t status_write_failures() const {
    std::lock_guard lock(mu_);
    return status_write_failures_;
  }
  int64_t events_recorded() const {
    std::lock_guard lock(mu_);
    return events_recorded_;
  }

 private:
  mutable std::mutex mu_;
  // Everything below is guarded by mu_.
  ChangeHandler on_change_;
  std::map<std::string, crd::ElasticVM> objects_;
  std::map<std::string, std::map<std::string, int>> events_by_key_;  // key -> reason -> count
  int failing_writes_ = 0;
  int64_t resource_version_ = 0;
  int64_t status_write_attempts_ = 0;
  int64_t status_write_failures_ = 0;
  int64_t events_recorded_ = 0;
};

// Polls `condition` every few milliseconds until it holds or `limit` passes.
inline bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval
  }
  return condition();
}

inline crd::ElasticVM MakeElasticVM(const std::string& name, int64_t vcpus) {
  crd::ElasticVM vm;
  vm.metadata.name = name;
  vm.metadata.namespace_ = "default";
  vm.spec.cpu.vcpus = vcpus;
  return vm;
}

// The Ready condition's reason, or "" when there is none.
inline std::string ReadyReason(const std::optional<crd::ElasticVM>& vm) {
  if (!vm) return "";
  const crd::Condition* ready = crd::FindCondition(vm->status, "Ready");
  return ready ? ready->status + "/" + ready->reason : "";
}

}  // namespace hotplug::reliability

// The ObjectSource test double: an API server's objects in a map, changed by the test the
// way kubectl and the watch would change them. Header-only; thread-safe. With
// fake_status_writer.h and fake_event_recorder.h, the three seams of controller/source.h.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "controller/source.h"
#include "crd/elasticvm.h"

namespace hotplug::testing {

class FakeObjectSource final : public controller::ObjectSource {
 public:
  // `announce_on_start`: Start reports every stored object, as an informer's first LIST does.
  explicit FakeObjectSource(bool announce_on_start = false)
      : announce_on_start_(announce_on_start) {}

  // --- ObjectSource
  void Start(ChangeHandler on_change) override {
    {
      std::lock_guard lock(mu_);
      on_change_ = on_change;
    }
    if (!announce_on_start_) return;
    for (const auto& key : Keys()) on_change(key);
  }
  void Stop() override {
    std::lock_guard lock(mu_);
    on_change_ = nullptr;
  }
  bool HasSynced() const override { return true; }
  std::optional<crd::ElasticVM> Get(const std::string& key) const override {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> Keys() const override {
    std::lock_guard lock(mu_);
    std::vector<std::string> keys;
    keys.reserve(objects_.size());
    for (const auto& entry : objects_) keys.push_back(entry.first);
    return keys;
  }

  // --- what a test does to the "cluster"
  // Stores `object` as given (a new resourceVersion; "uid-<name>" when it has no uid) and,
  // unless told not to, reports the change.
  void Put(crd::ElasticVM object, bool notify = true) {
    const std::string key = object.Key();
    {
      std::lock_guard lock(mu_);
      object.metadata.resource_version = std::to_string(++resource_version_);
      if (object.metadata.uid.empty()) object.metadata.uid = "uid-" + object.metadata.name;
      objects_[key] = std::move(object);
    }
    if (notify) Notify(key);
  }
  // As `kubectl apply`: a new object gets a uid and generation 1; an existing one keeps its
  // uid and status and gets the next generation.
  void Apply(crd::ElasticVM object) {
    const std::string key = object.Key();
    {
      std::lock_guard lock(mu_);
      auto found = objects_.find(key);
      if (found != objects_.end()) {
        object.status = found->second.status;
        object.metadata.uid = found->second.metadata.uid;
        object.metadata.generation = found->second.metadata.generation + 1;
      } else {
        object.metadata.uid =
            "uid-" + object.metadata.name + "-" + std::to_string(resource_version_ + 1);
        object.metadata.generation = 1;
      }
      object.metadata.resource_version = std::to_string(++resource_version_);
      objects_[key] = std::move(object);
    }
    Notify(key);
  }
  void Delete(const std::string& key) {
    {
      std::lock_guard lock(mu_);
      objects_.erase(key);
    }
    Notify(key);
  }
  // Changes the stored object in place, with a new resourceVersion, and reports nothing.
  // False when there is no such object.
  template <typename Change>
  bool Mutate(const std::string& key, Change change) {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return false;
    change(it->second);
    it->second.metadata.resource_version = std::to_string(++resource_version_);
    return true;
  }
  // Tells the controller that `key` changed, as a watch event would.
  void Notify(const std::string& key) {
    ChangeHandler handler;
    {
      std::lock_guard lock(mu_);
      handler = on_change_;
    }
    if (handler) handler(key);
  }

 private:
  const bool announce_on_start_;
  mutable std::mutex mu_;
  // Everything below is guarded by mu_.
  ChangeHandler on_change_;
  std::unordered_map<std::string, crd::ElasticVM> objects_;
  int64_t resource_version_ = 0;
};

}  // namespace hotplug::testing

// Objects held in memory for the benchmarks that leave the API server out (throughput): an
// ObjectSource the bench changes directly, and a StatusWriter that either discards the
// status or does what KubeStatusWriter does around its HTTP PUT (encode the object to JSON,
// decode the answer, put it in the cache) without the network.
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/source.h"
#include "crd/codec.h"

namespace hotplug::bench {

class MemorySource final : public controller::ObjectSource {
 public:
  void Start(ChangeHandler on_change) override {
    std::lock_guard lock(mu_);
    on_change_ = std::move(on_change);
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
    for (const auto& [key, object] : objects_) keys.push_back(key);
    return keys;
  }

  void Put(crd::ElasticVM object) {
    std::lock_guard lock(mu_);
    objects_[object.Key()] = std::move(object);
  }
  // Changes the cached object in place; bumps its resourceVersion as a write would.
  template <typename Change>
  void Mutate(const std::string& key, Change change) {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return;
    change(it->second);
    it->second.metadata.resource_version = std::to_string(++resource_version_);
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
  mutable std::mutex mu_;
  // Guarded by mu_.
  std::unordered_map<std::string, crd::ElasticVM> objects_;
  ChangeHandler on_change_;
  int64_t resource_version_ = 1;
};

class MemoryStatusWriter final : public controller::StatusWriter {
 public:
  // kDiscard: the write costs nothing (the status is dropped). kEncodeAndStore: the object is
  // encoded as the PUT body would be, decoded as the server's answer would be, and cached.
  enum class Mode { kDiscard, kEncodeAndStore };
  MemoryStatusWriter(MemorySource& source, Mode mode) : source_(source), mode_(mode) {}
  void set_mode(Mode mode) { mode_ = mode; }

  bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                   std::string* error) override {
    ++writes_;
    if (mode_ == Mode::kDiscard) return true;
    crd::ElasticVM target = object;
    target.status = status;
    std::string body = crd::EncodeJson(target).dump();
    crd::DecodeResult answer = crd::DecodeJsonText(body);
    if (!answer.ok()) {
      *error = answer.error;
      return false;
    }
    source_.Mutate(object.Key(),
                   [&](crd::ElasticVM& cached) { cached.status = std::move(answer.object->status); });
    return true;
  }
  int64_t writes() const { return writes_.load(); }

 private:
  MemorySource& source_;
  std::atomic<Mode> mode_;
  std::atomic<int64_t> writes_{0};
};

class CountingEventRecorder final : public controller::EventRecorder {
 public:
  void Record(const crd::ElasticVM&, const reconciler::Event&) override { ++events_; }
  int64_t events() const { return events_.load(); }

 private:
  std::atomic<int64_t> events_{0};
};

}  // namespace hotplug::bench

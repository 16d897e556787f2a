// The EventRecorder test double: counts Events, by object and reason unless told to count
// only (benchmarks with many objects), and keeps them in order when told to (short tests; a
// long run's memory must stay flat). Header-only; thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "controller/source.h"
#include "reconciler/reconciler.h"

namespace hotplug::testing {

class FakeEventRecorder final : public controller::EventRecorder {
 public:
  enum class Keep { kTotal, kCountsByReason, kEverything };
  explicit FakeEventRecorder(Keep keep = Keep::kCountsByReason) : keep_(keep) {}

  void Record(const crd::ElasticVM& object, const reconciler::Event& event) override {
    std::lock_guard lock(mu_);
    recorded_++;
    if (keep_ == Keep::kTotal) return;
    count_[object.Key()][event.reason]++;
    if (keep_ == Keep::kEverything) events_.push_back(object.Key() + " " + event.reason);
  }

  // How many Events with `reason` were recorded about `key`.
  int Count(const std::string& key, const std::string& reason) const {
    std::lock_guard lock(mu_);
    auto found = count_.find(key);
    if (found == count_.end()) return 0;
    auto count = found->second.find(reason);
    return count == found->second.end() ? 0 : count->second;
  }
  // "namespace/name Reason", in order (Keep::kEverything).
  std::vector<std::string> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  int64_t recorded() const {
    std::lock_guard lock(mu_);
    return recorded_;
  }

 private:
  const Keep keep_;
  mutable std::mutex mu_;
  // Everything below is guarded by mu_.
  int64_t recorded_ = 0;
  std::map<std::string, std::map<std::string, int>> count_;  // key -> reason -> count
  std::vector<std::string> events_;
};

}  // namespace hotplug::testing

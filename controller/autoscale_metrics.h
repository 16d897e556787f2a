// The autoscale metrics: per autoscaled object, what was recommended, desired and current,
// the utilisation seen and the bounds, plus decisions by direction. The one exception to
// "no per-object label" (controller/metrics.h): only objects with spec.*.autoscale get
// series, and an object's series go with it (or with its autoscale), because the alert
// "this VM sits at its maximum above target" must name the VM.
#pragma once

#include <map>
#include <string>

#include "common/thread_annotations.h"
#include "reconciler/reconciler.h"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace hotplug::controller {

class AutoscaleMetrics {
 public:
  explicit AutoscaleMetrics(prometheus::Registry& registry);

  void Record(const reconciler::AutoscaleDecisionRecord& record);
  // The object is gone or no longer autoscaled: its series go.
  void Forget(const std::string& key);

 private:
  struct Series {
    prometheus::Gauge *recommended, *desired, *current, *maximum, *utilization, *target;
  };
  prometheus::Family<prometheus::Gauge>* recommended_;
  prometheus::Family<prometheus::Gauge>* desired_;
  prometheus::Family<prometheus::Gauge>* current_;
  prometheus::Family<prometheus::Gauge>* maximum_;
  prometheus::Family<prometheus::Gauge>* utilization_;
  prometheus::Family<prometheus::Gauge>* target_;
  prometheus::Family<prometheus::Counter>* decisions_;

  Mutex mu_;
  // By {object key, resource}.
  std::map<std::pair<std::string, std::string>, Series> series_ GUARDED_BY(mu_);
};

}  // namespace hotplug::controller

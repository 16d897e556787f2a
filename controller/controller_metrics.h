// What the controller reports, as a seam with no-op defaults: controller/metrics.h plugs
// Prometheus in. Separate from controller.h so the parts of the work loop can report too.
#pragma once

#include <string_view>

#include "controller/workqueue.h"
#include "reconciler/reconciler.h"

namespace hotplug::controller {

// What the controller reports; no-op defaults. The metrics engineer implements this (and
// hands out the queue's and the reconciler's metrics) to plug Prometheus in.
class ControllerMetrics {
 public:
  virtual ~ControllerMetrics() = default;
  // result: success | requeue | error | deleted | skipped
  virtual void ReconcileDone(std::string_view result, double seconds) {
    (void)result, (void)seconds;
  }
  // result: success | failure
  virtual void StatusWrite(std::string_view result) { (void)result; }
  virtual void EventRecorded(std::string_view type, std::string_view reason) {
    (void)type, (void)reason;
  }
  virtual void ActiveWorkers(int workers) { (void)workers; }
  virtual void Leading(bool leading) { (void)leading; }
  // Non-null to receive the work queue's and the reconciler's own measurements.
  virtual WorkQueueMetrics* QueueMetrics() { return nullptr; }
  virtual reconciler::Metrics* ReconcilerMetrics() { return nullptr; }
};

}  // namespace hotplug::controller

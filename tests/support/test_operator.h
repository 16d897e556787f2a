// One operator "process" in a test: the controller (work queue, workers, reconciler) over the
// three seams' fakes and a hypervisor, started, with backoffs and requeues short enough for
// tests. A restart is a new TestOperator over the same fakes and hypervisor, as a new process
// would find them. Header-only.
#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include "backends/hypervisor.h"
#include "controller/controller.h"
#include "reconciler/clock.h"
#include "tests/support/fake_api.h"

namespace hotplug::testing {

// Controller options for tests: 2 workers, no resync, backoff from 1 ms to `max_backoff`,
// blocked and pending domains looked at again after `requeue`.
inline controller::Controller::Options FastOptions(
    std::chrono::milliseconds max_backoff = std::chrono::milliseconds(200),
    std::chrono::milliseconds requeue = std::chrono::milliseconds(50)) {
  controller::Controller::Options options;
  options.workers = 2;
  options.resync_period = std::chrono::milliseconds(0);
  options.rate_limiter.base_delay = std::chrono::milliseconds(1);
  options.rate_limiter.max_delay = max_backoff;
  options.reconciler.blocked_requeue = requeue;
  options.reconciler.pending_requeue = requeue;
  return options;
}

class TestOperator {
 public:
  TestOperator(controller::ObjectSource& source, controller::StatusWriter& status_writer,
               controller::EventRecorder& events, backends::Hypervisor& hypervisor,
               controller::Controller::Options options = FastOptions(), bool start = true)
      : controller_(std::make_unique<controller::Controller>(source, status_writer, events,
                                                             hypervisor, clock_, options)) {
    if (start) Start();
  }
  TestOperator(FakeApi& api, backends::Hypervisor& hypervisor,
               controller::Controller::Options options = FastOptions())
      : TestOperator(api.objects, api.status, api.events, hypervisor, std::move(options)) {}
  ~TestOperator() { Stop(); }
  TestOperator(const TestOperator&) = delete;
  TestOperator& operator=(const TestOperator&) = delete;

  void Start() {
    controller_->Start();
    controller_->StartWorkers();
  }
  // Stops the controller; false when a worker was still busy after `within`.
  bool Stop(std::chrono::seconds within = std::chrono::seconds(10)) {
    if (stopped_) return stopped_in_time_;
    stopped_ = true;
    stopped_in_time_ = controller_->Stop(std::chrono::steady_clock::now() + within);
    return stopped_in_time_;
  }
  controller::Controller& controller() { return *controller_; }
  int64_t passes() const { return controller_->passes(); }

 private:
  reconciler::SystemClock clock_;
  std::unique_ptr<controller::Controller> controller_;
  bool stopped_ = false;
  bool stopped_in_time_ = false;
};

}  // namespace hotplug::testing

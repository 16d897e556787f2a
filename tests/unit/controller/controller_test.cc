// The work loop, end to end with the fake hypervisor and the test doubles of ObjectSource /
// StatusWriter / EventRecorder (tests/support/). Every wait is a poll with a deadline.
#include "controller/controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "backends/fake/fake_hypervisor.h"
#include "reconciler/clock.h"
#include "tests/support/fake_event_recorder.h"
#include "tests/support/fake_object_source.h"
#include "tests/support/fake_status_writer.h"
#include "tests/support/objects.h"
#include "tests/support/poll.h"
#include "tests/support/test_operator.h"

namespace hotplug::controller {
namespace {

using namespace std::chrono_literals;
using backends::fake::DomainSpec;
using backends::fake::FakeHypervisor;
using testing::FakeEventRecorder;
using testing::FakeObjectSource;
using testing::FakeStatusWriter;

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
  return testing::PollUntil(condition, limit, 2ms);
}

crd::ElasticVM MakeVm(const std::string& name, int64_t vcpus, const std::string& domain = "") {
  return testing::MakeElasticVM(name, vcpus, domain);
}

DomainSpec MakeDomain(const std::string& name, unsigned maximum = 8, unsigned current = 1) {
  DomainSpec spec;
  spec.name = name;
  spec.maximum_vcpus = maximum;
  spec.current_vcpus = current;
  return spec;
}

size_t EnabledVcpus(FakeHypervisor& fake, const std::string& domain) {
  auto observed = fake.Peek(domain);
  if (!observed) return 0;
  size_t enabled = 0;
  for (const auto& vcpu : observed->vcpus) enabled += vcpu.enabled ? 1 : 0;
  return enabled;
}

bool Converged(const FakeObjectSource& source, const std::string& key, int64_t vcpus) {
  auto object = source.Get(key);
  if (!object || !object->status.vcpus) return false;
  const crd::Condition* ready = crd::FindCondition(object->status, "Ready");
  return object->status.vcpus->current == vcpus && ready && ready->status == "True";
}

struct Fixture {
  explicit Fixture(Controller::Options options = {}) {
    if (options.rate_limiter.base_delay == RateLimiter::Options{}.base_delay) {
      options.rate_limiter.base_delay = 1ms;
    }
    op = std::make_unique<testing::TestOperator>(source, writer, events, fake, options,
                                                 /*start=*/false);
    controller = &op->controller();
  }
  void Start() { op->Start(); }
  FakeObjectSource source;
  FakeStatusWriter writer{source, FakeStatusWriter::Mode::kStore, /*keep_written=*/true};
  FakeEventRecorder events{FakeEventRecorder::Keep::kEverything};
  FakeHypervisor fake;
  std::unique_ptr<testing::TestOperator> op;
  Controller* controller = nullptr;
};

TEST(ControllerTest, ConvergesAnObjectAndWritesItsStatus) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01"));
  f.Start();
  f.source.Put(MakeVm("web-01", 4));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 4); }));
  EXPECT_EQ(EnabledVcpus(f.fake, "web-01"), 4u);
  EXPECT_EQ(f.fake.SuccessfulCalls().size(), 3u);
  auto status = f.source.Get("default/web-01")->status;
  EXPECT_EQ(status.vcpus->desired, 4);
  EXPECT_EQ(status.observed_generation, 1);
}

TEST(ControllerTest, LongPassPublishesInProgressFirst) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01"));
  f.Start();
  f.source.Put(MakeVm("web-01", 5));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 5); }));
  auto writes = f.writer.written();
  ASSERT_GE(writes.size(), 2u);
  const crd::Condition* first_ready = crd::FindCondition(writes.front(), "Ready");
  ASSERT_NE(first_ready, nullptr);
  EXPECT_EQ(first_ready->reason, "InProgress");
}

TEST(ControllerTest, UnchangedStatusIsNotWrittenAgain) {
  Controller::Options options;
  options.resync_period = 5ms;  // many passes over a converged object
  Fixture f(options);
  f.fake.AddDomain(MakeDomain("web-01"));
  f.Start();
  f.source.Put(MakeVm("web-01", 2));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 2); }));
  size_t writes_after_convergence = f.writer.written().size();
  int64_t passes = f.controller->passes();
  ASSERT_TRUE(WaitFor([&] { return f.controller->passes() >= passes + 5; }));
  EXPECT_EQ(f.writer.written().size(), writes_after_convergence);
  EXPECT_EQ(f.fake.SuccessfulCalls().size(), 1u);
}

class CountingMetrics : public ControllerMetrics {
 public:
  void ReconcileDone(std::string_view result, double) override {
    std::lock_guard lock(mu);
    results[std::string(result)]++;
  }
  int Count(const std::string& result) {
    std::lock_guard lock(mu);
    return results[result];
  }
  std::mutex mu;
  std::map<std::string, int> results;
};

TEST(ControllerTest, DeletedObjectIsForgottenAndNothingChanges) {
  CountingMetrics metrics;
  Controller::Options options;
  options.metrics = &metrics;
  Fixture f(options);
  f.fake.AddDomain(MakeDomain("web-01"));
  f.Start();
  f.source.Put(MakeVm("web-01", 4));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 4); }));
  int writes = f.writer.attempts();
  f.source.Delete("default/web-01");
  // The domain drifts; a live object would be repaired, a deleted one must not be.
  ASSERT_TRUE(f.fake.SetVcpu("web-01", 3, false, false).ok());
  size_t calls = f.fake.SetVcpuCallCount();
  ASSERT_TRUE(WaitFor([&] { return metrics.Count("deleted") >= 1; }));
  f.controller->queue().Add("default/web-01");
  ASSERT_TRUE(WaitFor([&] { return metrics.Count("deleted") >= 2; }));
  EXPECT_EQ(f.fake.SetVcpuCallCount(), calls);
  EXPECT_EQ(f.writer.attempts(), writes);
  EXPECT_EQ(EnabledVcpus(f.fake, "web-01"), 3u);
  EXPECT_EQ(f.controller->queue().NumRequeues("default/web-01"), 0);
}

TEST(ControllerTest, NeverDeletedObjectKeyOnlyIsANoOp) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01"));
  f.Start();
  f.controller->queue().Add("default/ghost");
  ASSERT_TRUE(WaitFor([&] { return f.controller->queue().Len() == 0; }));
  EXPECT_EQ(f.fake.SetVcpuCallCount(), 0u);
  EXPECT_EQ(f.writer.attempts(), 0);
  EXPECT_EQ(f.controller->passes(), 0);
}

TEST(ControllerTest, FailedStepIsRetriedWithBackoffAndNoStepRunsTwice) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01"));
  f.fake.FailVcpu("web-01", 2,
                  {.code = backends::ErrorCode::kInternal,
                   .message = "injected",
                   .native_code = 1,
                   .remaining = 2});
  f.Start();
  f.source.Put(MakeVm("web-01", 4));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 4); }));
  std::set<std::pair<unsigned, bool>> seen;
  for (const auto& call : f.fake.SuccessfulCalls()) {
    EXPECT_TRUE(seen.insert({call.id, call.enable}).second) << "vCPU " << call.id << " twice";
  }
  EXPECT_EQ(EnabledVcpus(f.fake, "web-01"), 4u);
  EXPECT_GE(f.fake.SetVcpuCallCount(), 5u);  // 3 successes + the injected failures
  // A warning Event was recorded for the failure.
  bool failure_event = false;
  for (const auto& event : f.events.events()) failure_event |= event.find("default/web-01") == 0;
  EXPECT_TRUE(failure_event);
}

TEST(ControllerTest, FailedStatusWriteIsRetriedUntilItLands) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01"));
  f.writer.FailNextWrites(3);
  f.Start();
  f.source.Put(MakeVm("web-01", 2));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 2); }));
  EXPECT_GE(f.writer.attempts(), 4);
  EXPECT_EQ(f.fake.SuccessfulCalls().size(), 1u);
}

TEST(ControllerTest, LostStatusWriteDoesNotRepeatAnUnplugRequest) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01", 4, 4));
  f.fake.SetUnplugTimesOut("web-01", true);  // the guest is slow to let go
  f.writer.FailNextWrites(2);                // the status saying so is lost (in-progress and final)
  f.Start();
  f.source.Put(MakeVm("web-01", 2));
  ASSERT_TRUE(WaitFor([&] {
    auto object = f.source.Get("default/web-01");
    return object && object->status.vcpus && object->status.vcpus->pending == "2-3";
  }));
  // Only the first pass asked for the unplugs; the retry knew they were out.
  EXPECT_EQ(f.fake.SetVcpuCallCount(), 2u);
  f.fake.SetUnplugTimesOut("web-01", false);
  f.fake.CompletePendingUnplugs("web-01");
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 2); }));
  EXPECT_EQ(f.fake.SetVcpuCallCount(), 2u);
}

TEST(ControllerTest, SpecChangeConverges) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01"));
  f.Start();
  f.source.Put(MakeVm("web-01", 3));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 3); }));
  auto changed = *f.source.Get("default/web-01");
  changed.spec.cpu.vcpus = 6;
  changed.metadata.generation = 2;
  f.source.Put(changed);
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 6); }));
  EXPECT_EQ(f.source.Get("default/web-01")->status.observed_generation, 2);
}

TEST(ControllerTest, DomainEventRequeuesTheObjectsThatNameIt) {
  Controller::Options options;
  options.resync_period = 0ms;
  options.reconciler.blocked_requeue = 1h;  // only the event can bring it back
  Fixture f(options);
  DomainSpec stopped = MakeDomain("dom-a");
  stopped.state = backends::DomainState::kShutOff;
  f.fake.AddDomain(stopped);
  f.Start();
  f.source.Put(MakeVm("object-name", 3, "dom-a"));
  ASSERT_TRUE(WaitFor([&] {
    auto object = f.source.Get("default/object-name");
    const crd::Condition* ready = object ? crd::FindCondition(object->status, "Ready") : nullptr;
    return ready && ready->status == "False";
  }));
  EXPECT_EQ(f.fake.SetVcpuCallCount(), 0u);
  f.fake.SetState("dom-a", backends::DomainState::kRunning);  // fires the event sink
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/object-name", 3); }));
}

TEST(ControllerTest, DomainEventsFollowAnObjectThatNamesAnotherDomain) {
  Controller::Options options;
  options.resync_period = 0ms;
  options.reconciler.blocked_requeue = 1h;  // only events bring it back
  Fixture f(options);
  for (const char* name : {"dom-a", "dom-b"}) {
    DomainSpec stopped = MakeDomain(name);
    stopped.state = backends::DomainState::kShutOff;
    f.fake.AddDomain(stopped);
  }
  f.Start();
  auto blocked_on = [&](const std::string& domain) {
    auto object = f.source.Get("default/web");
    const crd::Condition* ready = object ? crd::FindCondition(object->status, "Ready") : nullptr;
    return ready && ready->status == "False" &&
           ready->message.find("domain " + domain + " is") != std::string::npos;
  };
  f.source.Put(MakeVm("web", 3, "dom-a"));
  ASSERT_TRUE(WaitFor([&] { return blocked_on("dom-a"); }));
  auto moved = MakeVm("web", 3, "dom-b");
  moved.metadata.generation = 2;
  f.source.Put(moved);
  ASSERT_TRUE(WaitFor([&] { return blocked_on("dom-b"); }));
  ASSERT_TRUE(WaitFor([&] { return f.controller->queue().Len() == 0; }));
  int64_t passes = f.controller->passes();
  f.fake.SetState("dom-a", backends::DomainState::kRunning);  // no longer its domain
  EXPECT_FALSE(WaitFor([&] { return f.controller->passes() > passes; }, 300ms));
  f.fake.SetState("dom-b", backends::DomainState::kRunning);
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web", 3); }));
  EXPECT_EQ(EnabledVcpus(f.fake, "dom-a"), 1u);
  EXPECT_EQ(EnabledVcpus(f.fake, "dom-b"), 3u);
}

TEST(ControllerTest, ResyncVisitsEveryKey) {
  Controller::Options options;
  options.resync_period = 10ms;
  Fixture f(options);
  f.fake.AddDomain(MakeDomain("web-01"));
  f.Start();
  f.source.Put(MakeVm("web-01", 2));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 2); }));
  // The hypervisor drifts behind the controller's back, with no event: resync repairs it.
  f.fake.SetVcpu("web-01", 1, false, false);
  ASSERT_TRUE(WaitFor([&] { return EnabledVcpus(f.fake, "web-01") == 2u; }));
}

TEST(ControllerTest, WorkersRunOnlyOnceStarted) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01"));
  f.controller->Start();  // source and queue, no workers (a standby replica)
  f.source.Put(MakeVm("web-01", 4));
  EXPECT_FALSE(WaitFor([&] { return f.fake.SetVcpuCallCount() > 0; }, 50ms));
  EXPECT_EQ(f.controller->queue().Len(), 1u);
  f.controller->StartWorkers();
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/web-01", 4); }));
}

TEST(ControllerTest, GracefulStopFinishesTheStepInFlightAndWritesStatus) {
  Fixture f;
  f.fake.AddDomain(MakeDomain("web-01", 16, 1));
  f.fake.SetLatency(0us, 100ms);
  f.Start();
  f.source.Put(MakeVm("web-01", 16));
  ASSERT_TRUE(WaitFor([&] { return f.fake.SetVcpuCallCount() >= 1; }));
  EXPECT_TRUE(f.controller->Stop(std::chrono::steady_clock::now() + 5s));
  size_t calls = f.fake.SetVcpuCallCount();
  EXPECT_LT(calls, 15u);                              // it stopped early
  EXPECT_EQ(f.fake.SuccessfulCalls().size(), calls);  // every call that started, finished
  // The final status tells the truth about what is enabled now.
  auto object = f.source.Get("default/web-01");
  ASSERT_TRUE(object->status.vcpus.has_value());
  EXPECT_EQ(static_cast<size_t>(object->status.vcpus->current), EnabledVcpus(f.fake, "web-01"));
  EXPECT_EQ(f.fake.SetVcpuCallCount(), calls);  // nothing after Stop
}

TEST(ControllerTest, ManyObjectsManyWorkersAllConverge) {
  Controller::Options options;
  options.workers = 4;
  Fixture f(options);
  for (int i = 0; i < 50; ++i) f.fake.AddDomain(MakeDomain("vm-" + std::to_string(i)));
  f.Start();
  for (int i = 0; i < 50; ++i) f.source.Put(MakeVm("vm-" + std::to_string(i), 1 + i % 8));
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < 50; ++i) {
          if (!Converged(f.source, "default/vm-" + std::to_string(i), 1 + i % 8)) return false;
        }
        return true;
      },
      20s));
  std::set<std::tuple<std::string, unsigned, bool>> seen;
  for (const auto& call : f.fake.SuccessfulCalls()) {
    EXPECT_TRUE(seen.insert({call.domain, call.id, call.enable}).second);
  }
}

}  // namespace
}  // namespace hotplug::controller

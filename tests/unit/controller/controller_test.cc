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

TEST(ControllerTest, ANewObjectsClaimOfItsDomainBringsNoSecondPass) {
  // The first pass claims the domain; the backend does not echo that claim back as a domain
  // event, so 100 new objects take 100 passes (they took 200 while it did).
  Fixture f;
  constexpr int kObjects = 100;
  for (int i = 0; i < kObjects; ++i) f.fake.AddDomain(MakeDomain("vm-" + std::to_string(i)));
  f.Start();
  for (int i = 0; i < kObjects; ++i) f.source.Put(MakeVm("vm-" + std::to_string(i), 2));
  ASSERT_TRUE(WaitFor([&] {
    for (int i = 0; i < kObjects; ++i) {
      if (!Converged(f.source, "default/vm-" + std::to_string(i), 2)) return false;
    }
    return f.controller->queue().Len() == 0;
  }));
  for (int i = 0; i < kObjects; ++i) {
    EXPECT_TRUE(f.fake.Peek("vm-" + std::to_string(i))->claim.has_value()) << i;
  }
  // Nothing else queues them again: FakeObjectSource does not signal the status writes.
  EXPECT_FALSE(WaitFor([&] { return f.controller->passes() > kObjects; }, 300ms))
      << f.controller->passes() << " passes";
  EXPECT_EQ(f.controller->passes(), kObjects);
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

bool ReadyWithReason(const FakeObjectSource& source, const std::string& key, const std::string& status,
                     const std::string& reason) {
  auto object = source.Get(key);
  const crd::Condition* ready = object ? crd::FindCondition(object->status, "Ready") : nullptr;
  return ready && ready->status == status && ready->reason == reason;
}

// Issue 16: objects a (3 vCPUs) and b (6) both naming vm-0 flapped it 3 <-> 6, 17 calls in
// 10 s, both Ready=True. Now the first claimant owns it and resyncs change nothing.
TEST(ControllerTest, TwoObjectsOnOneDomainDoNotFightAndTheOwnersDeletionHandsItOver) {
  Controller::Options options;
  options.resync_period = 5ms;
  Fixture f(options);
  f.fake.AddDomain(MakeDomain("vm-0"));
  f.Start();
  f.source.Put(MakeVm("a", 3, "vm-0"));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/a", 3); }));
  f.source.Put(MakeVm("b", 6, "vm-0"));
  ASSERT_TRUE(
      WaitFor([&] { return ReadyWithReason(f.source, "default/b", "False", "DomainClaimed"); }));
  const size_t calls = f.fake.SetVcpuCallCount();
  const int64_t passes = f.controller->passes();
  ASSERT_TRUE(WaitFor([&] { return f.controller->passes() >= passes + 100; }, 20s));
  EXPECT_EQ(f.fake.SetVcpuCallCount(), calls) << "a and b fought over vm-0";
  EXPECT_EQ(EnabledVcpus(f.fake, "vm-0"), 3u);
  EXPECT_TRUE(Converged(f.source, "default/a", 3));
  auto b = f.source.Get("default/b");
  EXPECT_NE(crd::FindCondition(b->status, "Ready")->message.find("ElasticVM default/a"),
            std::string::npos);

  f.source.Delete("default/a");
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/b", 6); }));
  EXPECT_EQ(f.fake.Peek("vm-0")->claim->owner, "default/b");
}

TEST(ControllerTest, AnOwnerPointedAtAnotherDomainReleasesTheOldOne) {
  Controller::Options options;
  options.resync_period = 0ms;
  options.reconciler.blocked_requeue = 1h;  // only the release may bring b back
  Fixture f(options);
  f.fake.AddDomain(MakeDomain("vm-0"));
  f.fake.AddDomain(MakeDomain("vm-1"));
  f.Start();
  f.source.Put(MakeVm("a", 2, "vm-0"));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/a", 2); }));
  f.source.Put(MakeVm("b", 4, "vm-0"));
  ASSERT_TRUE(
      WaitFor([&] { return ReadyWithReason(f.source, "default/b", "False", "DomainClaimed"); }));
  auto moved = MakeVm("a", 2, "vm-1");
  moved.metadata.generation = 2;
  f.source.Put(moved);
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/a", 2); }));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/b", 4); }));
  EXPECT_EQ(f.fake.Peek("vm-0")->claim->owner, "default/b");
  EXPECT_EQ(f.fake.Peek("vm-1")->claim->owner, "default/a");
  EXPECT_EQ(EnabledVcpus(f.fake, "vm-0"), 4u);
}

// Review of issue 15, item 6: a pass that stopped before the claim (here an invalid spec)
// erased the record of the claim the object still held, so deleting the object left the
// claim on the domain.
TEST(ControllerTest, AnOwnerDeletedAfterAPassThatStoppedEarlyStillReleasesItsClaim) {
  Controller::Options options;
  options.resync_period = 0ms;
  Fixture f(options);
  f.fake.AddDomain(MakeDomain("vm-0"));
  f.Start();
  f.source.Put(MakeVm("a", 2, "vm-0"));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/a", 2); }));
  ASSERT_EQ(f.fake.Peek("vm-0")->claim->owner, "default/a");
  auto invalid = MakeVm("a", 2, "vm-0");
  invalid.metadata.generation = 2;
  invalid.spec_error = "spec.cpu.vcpus: not a number";
  f.source.Put(invalid);
  ASSERT_TRUE(
      WaitFor([&] { return ReadyWithReason(f.source, "default/a", "False", "InvalidSpec"); }));
  ASSERT_TRUE(f.fake.Peek("vm-0")->claim) << "a pass that never got to the claim keeps it";
  f.source.Delete("default/a");
  EXPECT_TRUE(WaitFor([&] { return !f.fake.Peek("vm-0")->claim; }))
      << "the claim of deleted default/a leaked";
}

TEST(ControllerTest, AClaimWhoseOwnerIsGoneFromTheCacheIsTakenOver) {
  // The owner was deleted while no operator ran: nobody released its claim.
  Fixture f;
  f.fake.AddDomain(MakeDomain("vm-0"));
  ASSERT_TRUE(f.fake.ClaimDomain("vm-0", {"default/deleted", "uid-deleted", ""}, std::nullopt).ok());
  f.Start();
  f.source.Put(MakeVm("b", 2, "vm-0"));
  ASSERT_TRUE(WaitFor([&] { return Converged(f.source, "default/b", 2); }));
  EXPECT_EQ(f.fake.Peek("vm-0")->claim->owner, "default/b");
}

TEST(ControllerTest, AClaimOfAnotherManagersScopeIsNeverTakenOver) {
  Controller::Options options;
  options.reconciler.claim_manager = "node/node-a";
  options.reconciler.blocked_requeue = 1h;
  Fixture f(options);
  f.fake.AddDomain(MakeDomain("vm-0"));
  // Made by the central Deployment, for an object this agent's cache cannot see.
  ASSERT_TRUE(f.fake.ClaimDomain("vm-0", {"default/central", "uid-c", ""}, std::nullopt).ok());
  f.Start();
  f.source.Put(MakeVm("b", 2, "vm-0"));
  ASSERT_TRUE(
      WaitFor([&] { return ReadyWithReason(f.source, "default/b", "False", "DomainClaimed"); }));
  EXPECT_EQ(f.fake.SetVcpuCallCount(), 0u);
}

// Counts the calls in flight on each domain; every call waits a little, so two passes on one
// domain at once would overlap.
class OverlapHypervisor final : public backends::Hypervisor {
 public:
  explicit OverlapHypervisor(FakeHypervisor& inner) : inner_(inner) {}
  backends::Result<backends::DomainObservation> Observe(const std::string& d) override {
    InFlight guard(*this, d);
    return inner_.Observe(d);
  }
  backends::Status SetVcpu(const std::string& d, unsigned id, bool enable, bool persist) override {
    InFlight guard(*this, d);
    return inner_.SetVcpu(d, id, enable, persist);
  }
  backends::Status PinVcpu(const std::string& d, unsigned id, const std::vector<unsigned>& cpus,
                           bool persist) override {
    return inner_.PinVcpu(d, id, cpus, persist);
  }
  backends::Status OnlineGuestVcpus(const std::string& d, const std::vector<unsigned>& ids) override {
    return inner_.OnlineGuestVcpus(d, ids);
  }
  backends::Status ApplyMemoryStep(const std::string& d, const backends::MemoryStep& step,
                                   bool persist) override {
    return inner_.ApplyMemoryStep(d, step, persist);
  }
  backends::Result<backends::DomainClaim> ClaimDomain(
      const std::string& d, const backends::DomainClaim& claim,
      const std::optional<backends::DomainClaim>& replacing) override {
    InFlight guard(*this, d);
    return inner_.ClaimDomain(d, claim, replacing);
  }
  backends::Status ReleaseDomain(const std::string& d, const backends::DomainClaim& claim) override {
    return inner_.ReleaseDomain(d, claim);
  }
  void SetEventSink(DomainEventSink sink) override { inner_.SetEventSink(std::move(sink)); }
  int max_overlap() const { return max_overlap_.load(); }

 private:
  struct InFlight {
    InFlight(OverlapHypervisor& hv, const std::string& domain) : hv(hv), domain(domain) {
      int now;
      {
        std::lock_guard lock(hv.mu_);
        now = ++hv.in_flight_[domain];
      }
      int seen = hv.max_overlap_.load();
      while (now > seen && !hv.max_overlap_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(2ms);  // a slow hypervisor, so that overlaps show
    }
    ~InFlight() {
      std::lock_guard lock(hv.mu_);
      --hv.in_flight_[domain];
    }
    OverlapHypervisor& hv;
    std::string domain;
  };
  FakeHypervisor& inner_;
  std::mutex mu_;
  std::map<std::string, int> in_flight_;  // guarded by mu_
  std::atomic<int> max_overlap_{0};
};

TEST(ControllerTest, NeverTwoPassesOnOneDomainAtOnce) {
  FakeObjectSource source;
  FakeStatusWriter writer{source, FakeStatusWriter::Mode::kStore};
  FakeEventRecorder events;
  FakeHypervisor fake;
  OverlapHypervisor hypervisor(fake);
  Controller::Options options;
  options.workers = 4;
  options.resync_period = 1ms;
  options.rate_limiter.base_delay = 1ms;
  fake.AddDomain(MakeDomain("vm-0"));
  testing::TestOperator op(source, writer, events, hypervisor, options);
  for (const char* name : {"a", "b", "c", "d"}) source.Put(MakeVm(name, 2, "vm-0"));
  ASSERT_TRUE(WaitFor([&] { return op.passes() >= 200; }, 30s));
  op.Stop();
  EXPECT_EQ(hypervisor.max_overlap(), 1);
}

}  // namespace
}  // namespace hotplug::controller

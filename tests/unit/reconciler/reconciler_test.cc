// The reconcile pass, rule by rule (design: observe -> validate -> plan -> execute -> report).
#include "reconciler/reconciler.h"

#include <gtest/gtest.h>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::DomainState;
using backends::ErrorCode;
using backends::JobKind;
using backends::fake::DomainSpec;
using backends::fake::Fault;
using testing::MakeVm;

class ReconcilerTest : public testing::ReconcilerFixture {
 protected:
  void AddDomain(const std::string& name, unsigned current, unsigned maximum = 8) {
    DomainSpec spec;
    spec.name = name;
    spec.current_vcpus = current;
    spec.maximum_vcpus = maximum;
    hv_.AddDomain(spec);
  }
  std::vector<std::pair<unsigned, bool>> Calls() {
    std::vector<std::pair<unsigned, bool>> out;
    for (const auto& c : hv_.SuccessfulCalls()) out.emplace_back(c.id, c.enable);
    return out;
  }
};

TEST_F(ReconcilerTest, PlugTwoToFourThenUnplugFourToTwo) {
  AddDomain("vm", 2);
  auto vm = MakeVm("vm", 4);
  Result r = Pass(vm);
  EXPECT_EQ(Calls(), (std::vector<std::pair<unsigned, bool>>{{2, true}, {3, true}}));
  EXPECT_EQ(vm.status.vcpus->current, 4);
  EXPECT_EQ(vm.status.vcpus->enabled, "0-3");
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kSynced));
  EXPECT_EQ(r.requeue_after.count(), 0);

  SetDesired(vm, 2);
  Pass(vm);
  // Last plugged, first unplugged.
  EXPECT_EQ(Calls(),
            (std::vector<std::pair<unsigned, bool>>{{2, true}, {3, true}, {3, false}, {2, false}}));
  EXPECT_EQ(vm.status.vcpus->enabled, "0-1");
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  EXPECT_EQ(vm.status.observed_generation, 2);
}

TEST_F(ReconcilerTest, EveryCallChangesExactlyOneVcpu) {
  AddDomain("vm", 1, 16);
  auto vm = MakeVm("vm", 16);
  Result r = Pass(vm);
  ASSERT_EQ(r.steps.size(), 15u);
  for (size_t i = 0; i < r.steps.size(); ++i) {
    EXPECT_EQ(r.steps[i].operation, "plug");
    EXPECT_EQ(r.steps[i].id, static_cast<int64_t>(i + 1));  // lowest id first
  }
  EXPECT_EQ(hv_.SetVcpuCallCount(), 15u);
}

TEST_F(ReconcilerTest, UnplugNeverTouchesVcpuZeroAndFollowsPlugOrder) {
  AddDomain("vm", 1, 6);
  auto vm = MakeVm("vm", 1);
  // Plug 3, then 1, then 5 by hand-picked order: vCPU order 2,3,4 -> ids 3,1,5.
  ASSERT_TRUE(hv_.SetVcpu("vm", 3, true, false).ok());
  ASSERT_TRUE(hv_.SetVcpu("vm", 1, true, false).ok());
  ASSERT_TRUE(hv_.SetVcpu("vm", 5, true, false).ok());
  Pass(vm);
  auto calls = Calls();
  ASSERT_EQ(calls.size(), 6u);
  EXPECT_EQ(calls[3], std::make_pair(5u, false));
  EXPECT_EQ(calls[4], std::make_pair(1u, false));
  EXPECT_EQ(calls[5], std::make_pair(3u, false));
  EXPECT_TRUE(hv_.Peek("vm")->vcpus[0].enabled);
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

TEST_F(ReconcilerTest, AboveTheMaximumChangesNothing) {
  AddDomain("vm", 2, 4);
  auto vm = MakeVm("vm", 9);
  Result r = Pass(vm);
  EXPECT_TRUE(r.steps.empty());
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
  const auto& c = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(c.status, "False");
  EXPECT_EQ(c.reason, ReasonName(Reason::kExceedsMaximum));
  EXPECT_NE(c.message.find("maximum of 4"), std::string::npos) << c.message;
  EXPECT_EQ(Cond(vm, condition::kReady).reason, ReasonName(Reason::kExceedsMaximum));
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].reason, "Claimed");  // the first pass claims the domain
  EXPECT_EQ(r.events[1].reason, ReasonName(Reason::kExceedsMaximum));
  // The same blocked state on the next pass is not a new Event.
  EXPECT_TRUE(Pass(vm).events.empty());
}

TEST_F(ReconcilerTest, NewDesiredCountWhilePendingUsesAFreeSlot) {
  AddDomain("vm", 4, 8);
  hv_.SetUnplugTimesOut("vm", true);
  auto vm = MakeVm("vm", 2);
  Pass(vm);
  SetDesired(vm, 3);
  Pass(vm);  // 2 and 3 are on their way out, so vCPU 4 is plugged to make 3
  EXPECT_EQ(hv_.SuccessfulCalls().back().id, 4u);
  hv_.CompletePendingUnplugs("vm");
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 3u);
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

TEST_F(ReconcilerTest, ZeroOrNegativeIsBelowMinimum) {
  AddDomain("vm", 2);
  for (int64_t desired : {0, -3}) {
    auto vm = MakeVm("vm", desired);
    Pass(vm);
    EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kBelowMinimum));
  }
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
}

TEST_F(ReconcilerTest, HostLimitAndTopologyAreCheckedBeforeAnyStep) {
  DomainSpec spec;
  spec.name = "vm";
  spec.current_vcpus = 1;
  spec.maximum_vcpus = 8;
  spec.host_max_vcpus = 4;
  hv_.AddDomain(spec);
  auto vm = MakeVm("vm", 6);
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kHostLimit));
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
}

TEST_F(ReconcilerTest, ToggledManyTimesConverges) {
  AddDomain("vm", 1, 8);
  auto vm = MakeVm("vm", 1);
  for (int i = 0; i < 25; ++i) {
    SetDesired(vm, 1 + (i * 5) % 8);
    Pass(vm);
    EXPECT_EQ(Enabled("vm"), static_cast<unsigned>(*vm.spec.cpu.vcpus));
    EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  }
}

TEST_F(ReconcilerTest, FailureOnThirdOfFourPlugsKeepsTheFirstTwo) {
  AddDomain("vm", 1, 8);
  hv_.FailVcpu("vm", 3,
               Fault{ErrorCode::kInternal,
                     "internal error: unable to execute QEMU command 'device_add'", 1, 1});
  auto vm = MakeVm("vm", 5);
  Result r = Pass(vm);
  EXPECT_EQ(Calls(), (std::vector<std::pair<unsigned, bool>>{{1, true}, {2, true}}));
  EXPECT_EQ(Enabled("vm"), 3u);  // no rollback
  const auto& c = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(c.reason, ReasonName(Reason::kPartialFailure));
  EXPECT_EQ(c.message.rfind("plugged vcpu 1-2; vcpu 3 plug failed: internal error", 0), 0u)
      << c.message;
  ASSERT_EQ(vm.status.failures.size(), 1u);
  EXPECT_EQ(vm.status.failures[0].id, 3);
  EXPECT_EQ(vm.status.failures[0].operation, "plug");
  EXPECT_EQ(vm.status.failures[0].resource, "vcpu");
  EXPECT_TRUE(r.requeue_with_backoff);
  bool warned = false;
  for (const auto& e : r.events)
    warned |= e.type == Event::Type::kWarning && e.reason == "VcpuPlugFailed";
  EXPECT_TRUE(warned);

  // The fault was one-shot: the retry plugs exactly what is missing.
  Pass(vm);
  EXPECT_EQ(Calls(),
            (std::vector<std::pair<unsigned, bool>>{{1, true}, {2, true}, {3, true}, {4, true}}));
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  EXPECT_EQ(vm.status.failures.size(), 1u);  // history kept
}

TEST_F(ReconcilerTest, FailuresListIsBounded) {
  AddDomain("vm", 1, 4);
  options_.max_failures = 3;
  hv_.FailVcpu("vm", 1, Fault{ErrorCode::kInternal, "boom", 1, -1});
  auto vm = MakeVm("vm", 2);
  for (int i = 0; i < 7; ++i) Pass(vm);
  EXPECT_EQ(vm.status.failures.size(), 3u);
}

TEST_F(ReconcilerTest, MigrationInProgressBlocksChanges) {
  AddDomain("vm", 1);
  hv_.SetJob("vm", JobKind::kMigration);
  auto vm = MakeVm("vm", 3);
  Result r = Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
  EXPECT_EQ(Cond(vm, condition::kReady).reason, ReasonName(Reason::kMigrationInProgress));
  EXPECT_GT(r.requeue_after.count(), 0);
  hv_.SetJob("vm", JobKind::kNone);
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 3u);
}

TEST_F(ReconcilerTest, SuspendedObjectsAreOnlyObserved) {
  AddDomain("vm", 1);
  auto vm = MakeVm("vm", 3);
  vm.spec.suspend = true;
  Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kSuspended));
  EXPECT_EQ(vm.status.vcpus->current, 1);
  EXPECT_EQ(vm.status.vcpus->desired, 3);
}

TEST_F(ReconcilerTest, PersistAddsTheConfigFlagOnlyForPersistentDomains) {
  AddDomain("persistent", 1);
  DomainSpec transient;
  transient.name = "transient";
  transient.current_vcpus = 1;
  transient.persistent = false;
  hv_.AddDomain(transient);

  auto a = MakeVm("persistent", 2);
  Pass(a);
  auto b = MakeVm("persistent", 3);
  b.spec.persist = false;
  Pass(b);
  auto c = MakeVm("transient", 2);
  Pass(c);
  auto calls = hv_.SuccessfulCalls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_TRUE(calls[0].persist);
  EXPECT_FALSE(calls[1].persist);
  EXPECT_FALSE(calls[2].persist);
  EXPECT_EQ(hv_.PersistentVcpus("persistent"), 2u);
}

TEST_F(ReconcilerTest, UnplugTimeoutIsPendingNotFailure) {
  AddDomain("vm", 3);
  hv_.SetUnplugTimesOut("vm", true);
  auto vm = MakeVm("vm", 2);
  Result r = Pass(vm);
  EXPECT_TRUE(vm.status.failures.empty());
  EXPECT_FALSE(r.requeue_with_backoff);
  EXPECT_EQ(r.requeue_after, options_.pending_requeue);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kUnplugPending));
  EXPECT_EQ(vm.status.vcpus->pending, "2");

  // A pass while still pending issues nothing again.
  size_t calls_before = hv_.SetVcpuCallCount();
  Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls_before);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kUnplugPending));

  hv_.CompletePendingUnplugs("vm");
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  EXPECT_EQ(vm.status.vcpus->pending, "");
}

TEST_F(ReconcilerTest, NewDesiredCountWhilePendingWaitsThenConverges) {
  AddDomain("vm", 4, 4);  // no free slot: growing must wait for the pending unplugs
  hv_.SetUnplugTimesOut("vm", true);
  auto vm = MakeVm("vm", 2);
  Pass(vm);
  EXPECT_EQ(vm.status.vcpus->pending, "2-3");
  SetDesired(vm, 3);
  size_t calls_before = hv_.SetVcpuCallCount();
  Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls_before);  // nothing free to plug yet
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kUnplugPending));
  hv_.SetUnplugTimesOut("vm", false);
  hv_.CompletePendingUnplugs("vm");
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 3u);
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

TEST_F(ReconcilerTest, RaisingDesiredBackOverAPendingUnplugStopsWaitingForIt) {
  AddDomain("vm", 4, 4);
  hv_.SetUnplugTimesOut("vm", true);
  auto vm = MakeVm("vm", 3);
  Pass(vm);
  EXPECT_EQ(vm.status.vcpus->pending, "3");
  SetDesired(vm, 4);  // the spec wants vCPU 3 again: nothing to wait for
  size_t calls_before = hv_.SetVcpuCallCount();
  Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls_before);
  EXPECT_EQ(vm.status.vcpus->pending, "");
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  // The guest lets go after all: the next pass plugs it back.
  hv_.SetUnplugTimesOut("vm", false);
  hv_.CompletePendingUnplugs("vm");
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 4u);
  EXPECT_EQ(Calls().back(), std::make_pair(3u, true));
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

TEST_F(ReconcilerTest, StalePendingHintFromALostStatusWriteHeals) {
  // status.vcpus.pending says 3, but that unplug completed long ago and vCPU 3 was plugged
  // again by a pass whose status write was lost: 3 is an ordinary plugged vCPU.
  AddDomain("vm", 4, 4);
  auto vm = MakeVm("vm", 4);
  Pass(vm);
  vm.status.vcpus->pending = "3";
  Pass(vm);
  EXPECT_EQ(vm.status.vcpus->pending, "");
  EXPECT_EQ(vm.status.vcpus->current, 4);
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
}

TEST_F(ReconcilerTest, TcgStaleViewIsOutOfSyncAndReplugIsRefused) {
  DomainSpec spec;
  spec.name = "tcg";
  spec.current_vcpus = 4;
  spec.maximum_vcpus = 4;
  spec.tcg = true;
  hv_.AddDomain(spec);
  hv_.SetUnplugTimesOut("tcg", true);
  auto vm = MakeVm("tcg", 2);
  Pass(vm);
  const auto& c = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(c.reason, ReasonName(Reason::kOutOfSync));
  EXPECT_NE(c.message.find("libvirt reports 4 vCPUs enabled (0-3) but QEMU has 2"),
            std::string::npos)
      << c.message;
  EXPECT_NE(c.message.find("the guest has the desired 2"), std::string::npos);
  EXPECT_EQ(vm.status.vcpus->current, 4);
  EXPECT_EQ(vm.status.vcpus->qemu, 2);
  EXPECT_TRUE(vm.status.failures.empty());

  // Never unplugged twice, never plugged again.
  size_t calls_before = hv_.SetVcpuCallCount();
  Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls_before);
  SetDesired(vm, 4);
  Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls_before);
  EXPECT_EQ(hv_.Peek("tcg")->state, DomainState::kRunning);
}

TEST_F(ReconcilerTest, AfterATcgUnplugNoVcpuIsPluggedAgain) {
  DomainSpec spec;
  spec.name = "tcg";
  spec.current_vcpus = 1;
  spec.maximum_vcpus = 6;
  spec.tcg = true;
  hv_.AddDomain(spec);
  auto vm = MakeVm("tcg", 3);
  Pass(vm);  // plugs 1, 2
  hv_.SetUnplugTimesOut("tcg", true);
  SetDesired(vm, 2);
  Pass(vm);  // unplug 2 times out: QEMU removed it, libvirt did not notice
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kOutOfSync));
  SetDesired(vm, 4);
  const size_t calls_before = hv_.SetVcpuCallCount();
  Pass(vm);  // 3, 4 and 5 were never used, but QEMU would still crash on them
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls_before);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kOutOfSync));
  EXPECT_NE(Cond(vm, condition::kVcpusSynced).message.find("plugging vCPU 2-5 is refused"),
            std::string::npos)
      << Cond(vm, condition::kVcpusSynced).message;
  EXPECT_EQ(Calls(), (std::vector<std::pair<unsigned, bool>>{{1, true}, {2, true}}));
  EXPECT_EQ(hv_.Peek("tcg")->state, DomainState::kRunning);
}

TEST_F(ReconcilerTest, DomainVanishingMidPlanKeepsWhatWasDone) {
  AddDomain("vm", 1);
  hv_.VanishAfterCalls("vm", 2);
  auto vm = MakeVm("vm", 5);
  Result r = Pass(vm);
  EXPECT_EQ(hv_.SuccessfulCalls().size(), 2u);
  const auto& c = Cond(vm, condition::kReady);
  EXPECT_EQ(c.reason, ReasonName(Reason::kDomainNotFound));
  EXPECT_NE(c.message.find("plugged vcpu 1-2"), std::string::npos) << c.message;
  EXPECT_EQ(vm.status.vcpus->current, 3);  // what the steps did, not the view before them
  EXPECT_EQ(vm.status.vcpus->enabled, "0-2");
  EXPECT_GT(r.requeue_after.count(), 0);
}

TEST_F(ReconcilerTest, MissingStoppedAndUnreachableDomainsAreExplained) {
  auto vm = MakeVm("ghost", 2);
  Result r = Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kReady).reason, ReasonName(Reason::kDomainNotFound));
  EXPECT_NE(Cond(vm, condition::kReady).message.find("no libvirt domain named ghost"),
            std::string::npos);
  EXPECT_FALSE(r.requeue_with_backoff);

  AddDomain("off", 1);
  hv_.SetState("off", DomainState::kShutOff);
  auto off = MakeVm("off", 2);
  Pass(off);
  EXPECT_EQ(Cond(off, condition::kReady).reason, ReasonName(Reason::kDomainNotRunning));
  EXPECT_NE(Cond(off, condition::kReady).message.find("shut off"), std::string::npos);

  hv_.SetUnavailable(true);
  auto down = MakeVm("off", 2);
  r = Pass(down);
  EXPECT_EQ(Cond(down, condition::kReady).reason, ReasonName(Reason::kHypervisorUnavailable));
  EXPECT_TRUE(r.requeue_with_backoff);
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
}

TEST_F(ReconcilerTest, InvalidSpecChangesNothing) {
  AddDomain("vm", 1);
  auto vm = MakeVm("vm", 3);
  vm.spec_error = "spec.cpu.vcpus: expected an integer >= 1, got \"four\"";
  Result r = Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
  EXPECT_EQ(Cond(vm, condition::kReady).reason, ReasonName(Reason::kInvalidSpec));
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).message, *vm.spec_error);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].type, Event::Type::kWarning);
}

TEST_F(ReconcilerTest, TransitionTimeMovesOnlyWhenStatusFlips) {
  AddDomain("vm", 1);
  auto vm = MakeVm("vm", 2);
  Pass(vm);
  std::string first = Cond(vm, condition::kReady).last_transition_time;
  clock_.Advance(std::chrono::minutes(5));
  SetDesired(vm, 3);
  Pass(vm);  // True -> True
  EXPECT_EQ(Cond(vm, condition::kReady).last_transition_time, first);
  EXPECT_EQ(Cond(vm, condition::kReady).observed_generation, 2);
  clock_.Advance(std::chrono::minutes(5));
  SetDesired(vm, 99);
  Pass(vm);  // True -> False
  EXPECT_NE(Cond(vm, condition::kReady).last_transition_time, first);
}

TEST_F(ReconcilerTest, GuestAgentOnlinesPluggedCpus) {
  DomainSpec spec;
  spec.name = "vm";
  spec.current_vcpus = 1;
  spec.guest_agent = true;
  hv_.AddDomain(spec);
  auto vm = MakeVm("vm", 3);
  vm.spec.cpu.guest_online = crd::GuestOnline::kAgent;
  Pass(vm);
  EXPECT_EQ(vm.status.vcpus->online, "0-2");
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

TEST_F(ReconcilerTest, GuestAgentMissingIsRecordedButPlugsStay) {
  AddDomain("vm", 1);
  auto vm = MakeVm("vm", 2);
  vm.spec.cpu.guest_online = crd::GuestOnline::kAgent;
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 2u);
  ASSERT_EQ(vm.status.failures.size(), 1u);
  EXPECT_EQ(vm.status.failures[0].operation, "online");
  EXPECT_EQ(vm.status.failures[0].reason, ReasonName(Reason::kGuestAgentUnavailable));
}

TEST_F(ReconcilerTest, LongPassPublishesInProgressFirst) {
  AddDomain("vm", 1);
  auto vm = MakeVm("vm", 4);
  Reconciler reconciler(hv_, clock_, options_);
  int calls = 0;
  Result r = reconciler.Reconcile(vm, [&](const crd::ElasticVMStatus& s) {
    ++calls;
    EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);  // before the first step
    EXPECT_EQ(crd::FindCondition(s, condition::kReady)->reason, ReasonName(Reason::kInProgress));
  });
  EXPECT_EQ(calls, 1);
}

TEST_F(ReconcilerTest, StopRequestFinishesTheStepInFlightOnly) {
  AddDomain("vm", 1);
  std::atomic<bool> stop{false};
  options_.stop_requested = &stop;
  auto vm = MakeVm("vm", 5);
  Reconciler reconciler(hv_, clock_, options_);
  Result r = reconciler.Reconcile(vm, [&](const crd::ElasticVMStatus&) { stop = true; });
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
  EXPECT_EQ(crd::FindCondition(r.status, condition::kVcpusSynced)->reason,
            ReasonName(Reason::kInProgress));
}

TEST_F(ReconcilerTest, RequeueIsTheSoonestThatAnyResourceAskedFor) {
  // The pass stops before its steps: the vCPUs ask to come back at once (more to do), the
  // memory to look again after pending_requeue. The sooner wins.
  DomainSpec spec;
  spec.name = "vm";
  spec.current_vcpus = 1;
  spec.memory_slots = 4;
  hv_.AddDomain(spec);
  std::atomic<bool> stop{false};
  options_.stop_requested = &stop;
  auto vm = MakeVm("vm", 3);
  vm.spec.memory.size = *crd::Quantity::Parse("1152Mi");
  Reconciler reconciler(hv_, clock_, options_);
  Result r = reconciler.Reconcile(vm, [&](const crd::ElasticVMStatus&) { stop = true; });
  EXPECT_TRUE(r.steps.empty());
  EXPECT_EQ(crd::FindCondition(r.status, condition::kVcpusSynced)->reason,
            ReasonName(Reason::kInProgress));
  EXPECT_EQ(crd::FindCondition(r.status, condition::kMemorySynced)->reason,
            ReasonName(Reason::kInProgress));
  EXPECT_FALSE(r.requeue_with_backoff);
  EXPECT_EQ(r.requeue_after, std::chrono::milliseconds(1));
}

TEST_F(ReconcilerTest, MemoryGrowsByDimmInGuestBlocks) {
  DomainSpec spec;
  spec.name = "vm";
  spec.memory_slots = 4;
  hv_.AddDomain(spec);
  auto vm = MakeVm("vm", std::nullopt);
  vm.spec.memory.size = *crd::Quantity::Parse("1280Mi");
  Result r = Pass(vm);
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_EQ(r.steps[0].operation, "attach");
  EXPECT_EQ(r.steps[0].bytes, 256ull << 20);
  EXPECT_EQ(Cond(vm, condition::kMemorySynced).reason, ReasonName(Reason::kSynced));
  EXPECT_EQ(vm.status.memory->current, "1280Mi");
  EXPECT_EQ(vm.status.memory->method, "dimm");
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kNotManaged));

  vm.spec.memory.size = *crd::Quantity::Parse("1300Mi");
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kMemorySynced).reason, ReasonName(Reason::kBlockMisaligned));

  vm.spec.memory.size = *crd::Quantity::Parse("1Gi");
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kMemorySynced).reason, ReasonName(Reason::kShrinkNotAllowed));
  vm.spec.memory.allow_shrink = true;
  r = Pass(vm);
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_EQ(r.steps[0].operation, "detach");
  EXPECT_EQ(vm.status.memory->current, "1Gi");
}

TEST_F(ReconcilerTest, MemoryByVirtioMemAndBalloon) {
  DomainSpec spec;
  spec.name = "vm";
  spec.virtio_mem_size_bytes = 2ull << 30;
  hv_.AddDomain(spec);
  auto vm = MakeVm("vm", std::nullopt);
  vm.spec.memory.size = *crd::Quantity::Parse("2Gi");
  Pass(vm);
  EXPECT_EQ(vm.status.memory->method, "virtio-mem");
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");

  DomainSpec b;
  b.name = "balloon";
  hv_.AddDomain(b);
  auto bvm = MakeVm("balloon", std::nullopt);
  bvm.spec.memory.size = *crd::Quantity::Parse("128Mi");
  bvm.spec.memory.allow_shrink = true;
  Pass(bvm);
  EXPECT_EQ(Cond(bvm, condition::kMemorySynced).reason, ReasonName(Reason::kMemoryFloor));
  bvm.spec.memory.size = *crd::Quantity::Parse("768Mi");
  Pass(bvm);
  EXPECT_EQ(Cond(bvm, condition::kMemorySynced).status, "True");
  EXPECT_EQ(bvm.status.memory->method, "balloon");
}

TEST_F(ReconcilerTest, MemoryShrinkWaitsWhileAVcpuUnplugIsPending) {
  DomainSpec spec;
  spec.name = "vm";
  spec.current_vcpus = 3;
  spec.memory_slots = 2;
  hv_.AddDomain(spec);
  ASSERT_TRUE(
      hv_.ApplyMemoryStep("vm", {backends::MemoryStep::Op::kAttachDimm, "", 128ull << 20, 0}, false)
          .ok());
  hv_.SetUnplugTimesOut("vm", true);
  auto vm = MakeVm("vm", 2);
  vm.spec.memory.size = *crd::Quantity::Parse("1Gi");
  vm.spec.memory.allow_shrink = true;
  Result r = Pass(vm);
  for (const auto& s : r.steps) EXPECT_NE(s.resource, "memory");
  EXPECT_EQ(Cond(vm, condition::kMemorySynced).reason, ReasonName(Reason::kUnplugPending));
}

}  // namespace
}  // namespace hotplug::reconciler

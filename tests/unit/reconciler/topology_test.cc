// Topology (issue 16, item 2): how vCPU ids group into cores and sockets, and passes that plug
// and unplug whole cores, say which core is in flight or incomplete, and size by sockets.
#include "reconciler/topology.h"

#include <gtest/gtest.h>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::ErrorCode;
using backends::fake::DomainSpec;
using backends::fake::Fault;
using testing::MakeVm;

TEST(CpuTopologyTest, GroupsIdsSocketByCoreByThread) {
  backends::DomainObservation d;
  d.maximum_vcpus = 16;
  d.topology = {2, 2, 2, 2};  // 2 sockets x 2 dies x 2 cores x 2 threads
  CpuTopology topology(d);
  EXPECT_EQ(topology.threads(), 2u);
  EXPECT_EQ(topology.vcpus_per_socket(), 8u);
  EXPECT_EQ(topology.cores(), 8u);
  EXPECT_EQ(topology.CoreOf(5), 2u);
  EXPECT_EQ(topology.SocketOf(7), 0u);
  EXPECT_EQ(topology.SocketOf(8), 1u);
  EXPECT_EQ(topology.ThreadsOf(3), (std::vector<unsigned>{6, 7}));
  EXPECT_EQ(topology.Describe(), "2 sockets x 2 dies x 2 cores x 2 threads");
  EXPECT_EQ(topology.NameCore(1), "core 1 (vCPU 2-3)");
  EXPECT_EQ(IncompleteCores(topology, {0, 1, 2, 5}), (std::vector<unsigned>{2, 3, 4, 5}));
}

TEST(CpuTopologyTest, WithoutATopologyEachVcpuIsItsOwnSocket) {
  backends::DomainObservation d;
  d.maximum_vcpus = 4;
  CpuTopology topology(d);
  EXPECT_FALSE(topology.given());
  EXPECT_EQ(topology.threads(), 1u);
  EXPECT_EQ(topology.vcpus_per_socket(), 1u);
  EXPECT_EQ(topology.Describe(), "");
  EXPECT_TRUE(IncompleteCores(topology, {0, 2}).empty());
}

// The autoscaler reads the threads per core back from status.vcpus.topology.
TEST(CpuTopologyTest, ThreadsPerCoreReadBackFromTheDescription) {
  backends::DomainObservation d;
  d.maximum_vcpus = 16;
  d.topology = {2, 2, 2, 2};
  EXPECT_EQ(ThreadsPerCoreDescribed(CpuTopology(d).Describe()), 2u);
  d.topology = {4, 1, 4, 1};
  EXPECT_EQ(ThreadsPerCoreDescribed(CpuTopology(d).Describe()), 1u);
  d.topology = {1, 1, 4, 4};
  EXPECT_EQ(ThreadsPerCoreDescribed(CpuTopology(d).Describe()), 4u);
  for (const char* odd : {"", "2 threads", "1 socket x 2 cores x 0 threads",
                          "1 socket x 2 cores x 2 thread-ish", "x 99999999999 threads"}) {
    EXPECT_EQ(ThreadsPerCoreDescribed(odd), 1u) << odd;
  }
}

// Stops the pass (as SIGTERM does) during the first vCPU call.
class StopDuringFirstCall final : public backends::Hypervisor {
 public:
  StopDuringFirstCall(backends::fake::FakeHypervisor& inner, std::atomic<bool>& stop)
      : inner_(inner), stop_(stop) {}
  backends::Result<backends::DomainObservation> Observe(const std::string& d) override {
    return inner_.Observe(d);
  }
  backends::Status SetVcpu(const std::string& d, unsigned id, bool enable, bool persist) override {
    stop_ = true;
    return inner_.SetVcpu(d, id, enable, persist);
  }
  backends::Status PinVcpu(const std::string& d, unsigned id, const std::vector<unsigned>& cpus,
                           bool persist) override {
    return inner_.PinVcpu(d, id, cpus, persist);
  }
  backends::Status OnlineGuestVcpus(const std::string& d,
                                    const std::vector<unsigned>& ids) override {
    return inner_.OnlineGuestVcpus(d, ids);
  }
  backends::Status ApplyMemoryStep(const std::string& d, const backends::MemoryStep& step,
                                   bool persist) override {
    return inner_.ApplyMemoryStep(d, step, persist);
  }
  backends::Result<backends::DomainClaim> ClaimDomain(
      const std::string& d, const backends::DomainClaim& claim,
      const std::optional<backends::DomainClaim>& replacing) override {
    return inner_.ClaimDomain(d, claim, replacing);
  }
  backends::Status ReleaseDomain(const std::string& d,
                                 const backends::DomainClaim& claim) override {
    return inner_.ReleaseDomain(d, claim);
  }
  void SetEventSink(DomainEventSink sink) override { inner_.SetEventSink(std::move(sink)); }

 private:
  backends::fake::FakeHypervisor& inner_;
  std::atomic<bool>& stop_;
};

class CoresTest : public testing::ReconcilerFixture {
 protected:
  // 2 sockets x 2 cores x 2 threads, booted with core 0 (vCPU 0-1, not hotpluggable).
  void SetUp() override {
    DomainSpec spec;
    spec.name = "vm";
    spec.maximum_vcpus = 8;
    spec.current_vcpus = 2;
    spec.topology = {2, 1, 2, 2};
    spec.boot_vcpus_hotpluggable = false;
    hv_.AddDomain(spec);
  }
  std::vector<std::pair<unsigned, bool>> Calls() {
    std::vector<std::pair<unsigned, bool>> out;
    for (const auto& c : hv_.SuccessfulCalls()) out.emplace_back(c.id, c.enable);
    return out;
  }
};

TEST_F(CoresTest, SocketsSizeTheDomainAndEachCoreIsPluggedInConsecutiveCalls) {
  auto vm = MakeVm("vm", std::nullopt);
  vm.spec.cpu.sockets = 2;
  std::optional<crd::ElasticVMStatus> progress;
  Reconciler reconciler(hv_, clock_, options_);
  Result r = reconciler.Reconcile(vm, [&](const crd::ElasticVMStatus& s) { progress = s; });
  vm.status = r.status;
  EXPECT_EQ(Calls(), (std::vector<std::pair<unsigned, bool>>{
                         {2, true}, {3, true}, {4, true}, {5, true}, {6, true}, {7, true}}));
  EXPECT_EQ(vm.status.vcpus->desired, 8);
  EXPECT_EQ(vm.status.vcpus->topology, "2 sockets x 2 cores x 2 threads");
  EXPECT_EQ(vm.status.vcpus->incomplete_cores, "");
  EXPECT_EQ(vm.status.vcpus->in_flight, "");
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
  // Before the steps, the status said which cores were in flight.
  ASSERT_TRUE(progress.has_value());
  EXPECT_EQ(progress->vcpus->in_flight, "2-7");
  const crd::Condition* ready = crd::FindCondition(*progress, condition::kReady);
  EXPECT_NE(ready->message.find("cores in flight: core 1 (vCPU 2-3), core 2 (vCPU 4-5), core 3 "
                                "(vCPU 6-7)"),
            std::string::npos)
      << ready->message;

  vm.spec.cpu.sockets = 1;
  ++vm.metadata.generation;
  Pass(vm);
  // The last plugged core first, its threads last plugged first.
  auto calls = Calls();
  ASSERT_EQ(calls.size(), 10u);
  EXPECT_EQ(
      std::vector(calls.begin() + 6, calls.end()),
      (std::vector<std::pair<unsigned, bool>>{{7, false}, {6, false}, {5, false}, {4, false}}));
  EXPECT_EQ(vm.status.vcpus->desired, 4);
  EXPECT_EQ(Enabled("vm"), 4u) << "sockets: 1 is 4 vCPUs, 2 cores of 2 threads";
}

TEST_F(CoresTest, AFailureInsideACoreSaysWhichCoreIsIncompleteAndTheRetryCompletesIt) {
  hv_.FailVcpu("vm", 5, Fault{ErrorCode::kInternal, "unable to execute QEMU command", 1, 1});
  auto vm = MakeVm("vm", 6);
  Result r = Pass(vm);
  EXPECT_EQ(Calls(), (std::vector<std::pair<unsigned, bool>>{{2, true}, {3, true}, {4, true}}));
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kPartialFailure));
  EXPECT_NE(synced.message.find("vcpu 5 plug failed: unable to execute QEMU command; core 2 "
                                "(vCPU 4-5) is incomplete: only vCPU 4 of its 2 threads is "
                                "enabled"),
            std::string::npos)
      << synced.message;
  EXPECT_EQ(vm.status.vcpus->incomplete_cores, "4-5");
  EXPECT_TRUE(r.requeue_with_backoff);

  Pass(vm);
  EXPECT_EQ(Calls().back(), std::make_pair(5u, true));
  EXPECT_EQ(Enabled("vm"), 6u);
  EXPECT_EQ(vm.status.vcpus->incomplete_cores, "");
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

TEST_F(CoresTest, AStopRequestWaitsForTheCoreInFlight) {
  std::atomic<bool> stop{false};
  options_.stop_requested = &stop;
  StopDuringFirstCall stopping(hv_, stop);
  Reconciler reconciler(stopping, clock_, options_);
  auto vm = MakeVm("vm", 8);
  Result r = reconciler.Reconcile(vm);
  EXPECT_EQ(Calls(), (std::vector<std::pair<unsigned, bool>>{{2, true}, {3, true}}));
  EXPECT_EQ(r.status.vcpus->incomplete_cores, "");
}

TEST_F(CoresTest, ACountThatIsNotWholeSocketsIsDoneAndSaidInTheCondition) {
  auto vm = MakeVm("vm", 6);
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 6u);
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.status, "True");
  EXPECT_NE(synced.message.find("6 vCPUs are not a whole number of sockets (4 vCPUs each"),
            std::string::npos)
      << synced.message;
  EXPECT_NE(synced.message.find("4 or 8 would be whole sockets"), std::string::npos);
  SetDesired(vm, 8);
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).message.find("whole number"), std::string::npos);
}

TEST_F(CoresTest, ACountThatIsNotWholeCoresChangesNothing) {
  auto vm = MakeVm("vm", 5);
  Pass(vm);
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kTopologyMismatch));
}

TEST_F(CoresTest, SocketsBeyondTheMaximumSayHowManyVcpusThatIs) {
  auto vm = MakeVm("vm", std::nullopt);
  vm.spec.cpu.sockets = 3;
  Pass(vm);
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kExceedsMaximum));
  EXPECT_NE(synced.message.find("spec.cpu.sockets is 3 (12 vCPUs: 4 per socket"), std::string::npos)
      << synced.message;
}

TEST_F(CoresTest, WithoutATopologyASocketIsOneVcpu) {
  DomainSpec plain;
  plain.name = "plain";
  plain.maximum_vcpus = 4;
  hv_.AddDomain(plain);
  auto vm = MakeVm("plain", std::nullopt);
  vm.spec.cpu.sockets = 3;
  Pass(vm);
  EXPECT_EQ(Enabled("plain"), 3u);
  EXPECT_EQ(vm.status.vcpus->topology, "");
}

}  // namespace
}  // namespace hotplug::reconciler

// Pinning (issue 16, item 3): a plugged vCPU is pinned before it is plugged, never left
// unpinned among pinned ones, and the status shows each enabled vCPU's pin.
#include "reconciler/pinning.h"

#include <gtest/gtest.h>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::ErrorCode;
using backends::fake::DomainSpec;
using testing::MakeVm;

crd::PinningSpec Dealt(const std::string& cpus) { return {crd::PinningPolicy::kDealt, cpus}; }

class PinningTest : public testing::ReconcilerFixture {
 protected:
  // vCPU 0 pinned to host CPU 0, as <cputune><vcpupin vcpu='0' cpuset='0'/>.
  void AddPinned(std::vector<unsigned> default_cpuset = {}) {
    DomainSpec spec;
    spec.name = "vm";
    spec.maximum_vcpus = 4;
    spec.current_vcpus = 1;
    spec.pins = {{0, {0}}};
    spec.default_cpuset = std::move(default_cpuset);
    spec.host_cpus = 2;
    hv_.AddDomain(spec);
  }
};

TEST_F(PinningTest, EachPluggedVcpuIsDealtAHostCpuBeforeItIsPlugged) {
  AddPinned();
  auto vm = MakeVm("vm", 4);
  vm.spec.cpu.pinning = Dealt("0-1");
  Result r = Pass(vm);
  std::vector<std::pair<std::string, int64_t>> steps;
  for (const auto& s : r.steps) steps.emplace_back(s.operation, s.id);
  EXPECT_EQ(steps, (std::vector<std::pair<std::string, int64_t>>{
                       {"pin", 1}, {"plug", 1}, {"pin", 2}, {"plug", 2}, {"pin", 3}, {"plug", 3}}));
  // Least used first: host CPU 1 (0 has vCPU 0), then 0, then 1.
  const auto calls = hv_.SuccessfulCalls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].pin, std::vector<unsigned>{1}) << "pinned when it was plugged";
  EXPECT_EQ(calls[1].pin, std::vector<unsigned>{0});
  EXPECT_EQ(calls[2].pin, std::vector<unsigned>{1});
  EXPECT_EQ(vm.status.vcpus->pins,
            (std::map<int64_t, std::string>{{0, "0"}, {1, "1"}, {2, "0"}, {3, "1"}}));
  bool said = false;
  for (const auto& e : r.events)
    said |= e.message.find("(pinned to host CPU 1)") != std::string::npos;
  EXPECT_TRUE(said);
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

TEST_F(PinningTest, APinnedDomainWithoutPinningForNewVcpusIsNotPlugged) {
  AddPinned();
  auto vm = MakeVm("vm", 2);
  Result r = Pass(vm);
  EXPECT_TRUE(r.steps.empty());
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u) << "vCPU 1 would have run unpinned beside vCPU 0";
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kPinningUnavailable));
  EXPECT_NE(synced.message.find("pins its vCPUs (vCPU 0 to 0)"), std::string::npos)
      << synced.message;
  EXPECT_NE(synced.message.find("spec.cpu.pinning.hostCPUs"), std::string::npos);
}

TEST_F(PinningTest, WithoutASpecTheDomainsCpusetPinsNewVcpus) {
  AddPinned({0, 1});
  auto vm = MakeVm("vm", 2);
  Pass(vm);
  ASSERT_EQ(hv_.SuccessfulCalls().size(), 1u);
  EXPECT_EQ(hv_.SuccessfulCalls()[0].pin, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(vm.status.vcpus->pins, (std::map<int64_t, std::string>{{0, "0"}, {1, "0-1"}}));
}

TEST_F(PinningTest, PolicyDomainNeedsACpuset) {
  AddPinned();
  auto vm = MakeVm("vm", 2);
  vm.spec.cpu.pinning = crd::PinningSpec{crd::PinningPolicy::kDomain, ""};
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kPinningUnavailable));
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
}

TEST_F(PinningTest, AHostCpuTheHostDoesNotHaveIsRefusedBeforeAnyCall) {
  AddPinned();
  auto vm = MakeVm("vm", 2);
  vm.spec.cpu.pinning = Dealt("0-3");
  Pass(vm);
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kPinningUnavailable));
  EXPECT_NE(synced.message.find("host CPU 2 but this host has CPUs 0-1"), std::string::npos)
      << synced.message;
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
}

TEST_F(PinningTest, AFailedPinLeavesTheVcpuUnplugged) {
  AddPinned();
  hv_.FailPinVcpu("vm", 2,
                  backends::fake::Fault{ErrorCode::kOperationInvalid,
                                        "Invalid value '1' for 'cpuset.cpus'", 8, 1});
  auto vm = MakeVm("vm", 4);
  vm.spec.cpu.pinning = Dealt("0-1");
  Result r = Pass(vm);
  ASSERT_EQ(hv_.SuccessfulCalls().size(), 1u) << "vCPU 2 was plugged although its pin failed";
  EXPECT_EQ(hv_.SuccessfulCalls()[0].id, 1u);
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kPartialFailure));
  EXPECT_NE(synced.message.find("vcpu 2 pin to host CPU 0 failed (not plugged): Invalid value"),
            std::string::npos)
      << synced.message;
  ASSERT_EQ(vm.status.failures.size(), 1u);
  EXPECT_EQ(vm.status.failures[0].operation, "pin");
  EXPECT_TRUE(r.requeue_with_backoff);
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 4u);
}

TEST_F(PinningTest, AnUnpinnedDomainIsLeftUnpinned) {
  DomainSpec spec;
  spec.name = "vm";
  spec.maximum_vcpus = 4;
  hv_.AddDomain(spec);
  auto vm = MakeVm("vm", 3);
  Result r = Pass(vm);
  for (const auto& s : r.steps) EXPECT_NE(s.operation, "pin");
  EXPECT_TRUE(vm.status.vcpus->pins.empty());
}

}  // namespace
}  // namespace hotplug::reconciler

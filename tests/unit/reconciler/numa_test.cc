// NUMA (issue 16, item 4): vCPUs round-robin over the guest's cells, unplugged in the reverse
// order; a DIMM to spec.memory.numaNode or the cell with the least memory; status per cell;
// a domain whose cells split a socket is refused CPU hot-plug.
#include <gtest/gtest.h>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::NumaCell;
using backends::fake::DomainSpec;
using testing::MakeVm;

class NumaTest : public testing::ReconcilerFixture {
 protected:
  // 2 sockets x 2 cores x 2 threads, one socket per cell; cell 1 has less memory.
  void AddDomain(std::vector<NumaCell> cells = {{0, {0, 1, 2, 3}, 512ull << 20},
                                                {1, {4, 5, 6, 7}, 256ull << 20}}) {
    DomainSpec spec;
    spec.name = "vm";
    spec.maximum_vcpus = 8;
    spec.current_vcpus = 2;
    spec.topology = {2, 1, 2, 2};
    spec.boot_vcpus_hotpluggable = false;
    spec.numa_cells = std::move(cells);
    spec.memory_slots = 4;
    spec.boot_memory_bytes = 768ull << 20;
    hv_.AddDomain(spec);
  }
  std::vector<std::pair<unsigned, bool>> Calls() {
    std::vector<std::pair<unsigned, bool>> out;
    for (const auto& c : hv_.SuccessfulCalls()) out.emplace_back(c.id, c.enable);
    return out;
  }
};

TEST_F(NumaTest, CoresArePluggedRoundRobinOverTheCellsAndUnpluggedInReverse) {
  AddDomain();
  auto vm = MakeVm("vm", 6);
  Pass(vm);
  // Cell 0 has core 0; cell 1 is emptiest: core 2 (vCPU 4-5) first, then cell 0's core 1.
  EXPECT_EQ(Calls(),
            (std::vector<std::pair<unsigned, bool>>{{4, true}, {5, true}, {2, true}, {3, true}}));
  ASSERT_EQ(vm.status.numa.size(), 2u);
  EXPECT_EQ(vm.status.numa[0], (crd::NumaCellStatus{0, "0-3", "0-3", "512Mi"}));
  EXPECT_EQ(vm.status.numa[1], (crd::NumaCellStatus{1, "4-7", "4-5", "256Mi"}));

  SetDesired(vm, 8);
  Pass(vm);
  EXPECT_EQ(Calls().back(), std::make_pair(7u, true));
  SetDesired(vm, 4);
  Pass(vm);
  // From the fuller cell each time, the last plugged first: the cells tie at 4, so core 3
  // (plugged last, cell 1) goes; then cell 0 has 4 to cell 1's 2, so its core 1 goes.
  const auto calls = Calls();
  ASSERT_EQ(calls.size(), 10u);
  EXPECT_EQ(
      std::vector(calls.begin() + 6, calls.end()),
      (std::vector<std::pair<unsigned, bool>>{{7, false}, {6, false}, {3, false}, {2, false}}));
  EXPECT_EQ(vm.status.numa[0].vcpus, "0-1");
  EXPECT_EQ(vm.status.numa[1].vcpus, "4-5");
}

TEST_F(NumaTest, ADimmGoesToTheCellWithTheLeastMemoryOrTheOneAskedFor) {
  AddDomain();
  auto vm = MakeVm("vm", std::nullopt);
  vm.spec.memory.size = *crd::Quantity::Parse("896Mi");  // +128Mi
  Pass(vm);
  auto devices = hv_.Peek("vm")->memory.devices;
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].node, 1) << "cell 1 had 256Mi to cell 0's 512Mi";
  EXPECT_EQ(vm.status.numa[1].memory, "384Mi");

  vm.spec.memory.size = *crd::Quantity::Parse("1Gi");
  vm.spec.memory.numa_node = 0;
  Pass(vm);
  devices = hv_.Peek("vm")->memory.devices;
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[1].node, 0);
  EXPECT_EQ(vm.status.numa[0].memory, "640Mi");

  vm.spec.memory.size = *crd::Quantity::Parse("1152Mi");
  vm.spec.memory.numa_node = 5;
  Result r = Pass(vm);
  EXPECT_TRUE(r.steps.empty());
  const auto& synced = Cond(vm, condition::kMemorySynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kTopologyMismatch));
  EXPECT_NE(synced.message.find("numaNode is 5 but domain vm has NUMA cell 0-1"), std::string::npos)
      << synced.message;
}

TEST_F(NumaTest, CellsThatSplitASocketAreRefusedCpuHotplug) {
  AddDomain({{0, {0, 1}, 256ull << 20}, {1, {2, 3, 4, 5, 6, 7}, 512ull << 20}});
  auto vm = MakeVm("vm", 4);
  Result r = Pass(vm);
  EXPECT_TRUE(r.steps.empty());
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kNumaSplitsSocket));
  EXPECT_NE(synced.message.find("split socket 0 (vCPU 0-3) across cells 0-1"), std::string::npos)
      << synced.message;
  // Nothing to change is not refused: the layout matters only for hot-plug.
  SetDesired(vm, 2);
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).status, "True");
}

TEST_F(NumaTest, WithoutNumaCoresGoLowestFirstAsBefore) {
  AddDomain({});
  auto vm = MakeVm("vm", 6);
  Pass(vm);
  EXPECT_EQ(Calls(),
            (std::vector<std::pair<unsigned, bool>>{{2, true}, {3, true}, {4, true}, {5, true}}));
  EXPECT_TRUE(vm.status.numa.empty());
}

}  // namespace
}  // namespace hotplug::reconciler

// Property: random domain shapes, desired counts and faults; once faults stop, passes converge
// to the desired count, never touch vCPU 0, never ask for a state a vCPU already has, never
// end a pass that had no failed step with half a core (unless it was refused and changed
// nothing), never leave an enabled vCPU of a pinned domain unpinned, and a domain never has
// two owners: a second object naming it is never reconciled against it. Shapes: sockets x
// cores x threads, some with one NUMA cell per socket, some with the boot vCPUs pinned.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "backends/range_list.h"
#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::ErrorCode;
using backends::fake::DomainSpec;
using backends::fake::Fault;

class PropertyTest : public testing::ReconcilerFixture {
 protected:
  // Cores with some but not all threads plugged, counting vCPUs whose unplug is pending as
  // gone (the pass's own hint), computed from the fake, not from the pass's status.
  std::vector<unsigned> HalfCores(const std::string& name, unsigned threads,
                                  const crd::ElasticVM& vm) {
    std::vector<unsigned> pending;
    if (vm.status.vcpus) {
      pending = backends::ParseRangeList(vm.status.vcpus->pending).value_or(pending);
    }
    std::map<unsigned, unsigned> plugged;  // core -> threads
    const auto domain = hv_.Peek(name);
    for (const auto& v : domain->vcpus) {
      if (!v.enabled || std::find(pending.begin(), pending.end(), v.id) != pending.end()) continue;
      plugged[v.id / threads]++;
    }
    std::vector<unsigned> half;
    for (const auto& [core, count] : plugged) {
      if (count != threads) half.push_back(core);
    }
    return half;
  }
};

TEST_F(PropertyTest, RandomShapesDesiredCountsAndFaultsConvergeSafely) {
  std::mt19937 rng(20261125);
  for (int round = 0; round < 60; ++round) {
    const std::string name = "vm" + std::to_string(round);
    DomainSpec spec;
    spec.name = name;
    unsigned threads = 1;
    if (rng() % 2 == 0) {  // sockets x cores x threads
      threads = 2 + rng() % 2;
      spec.topology = {1 + static_cast<unsigned>(rng() % 2), 1,
                       1 + static_cast<unsigned>(rng() % 3), threads};
      spec.maximum_vcpus = spec.topology.sockets * spec.topology.cores * threads;
      if (spec.maximum_vcpus < 2 * threads) spec.maximum_vcpus = 0;
    }
    if (spec.maximum_vcpus == 0 || threads == 1) {
      threads = 1;
      spec.topology = {};
      spec.maximum_vcpus = 2 + rng() % 15;
    }
    const unsigned cores = spec.maximum_vcpus / threads;
    spec.current_vcpus = threads * (1 + rng() % cores);
    spec.boot_vcpus_hotpluggable = rng() % 2 == 0;
    if (!spec.boot_vcpus_hotpluggable) spec.current_vcpus = threads;  // the boot core
    if (spec.topology.sockets == 2 && rng() % 2 == 0) {  // one NUMA cell per socket
      const unsigned per_socket = spec.maximum_vcpus / 2;
      for (unsigned cell = 0; cell < 2; ++cell) {
        backends::NumaCell numa{cell, {}, 256ull << 20};
        for (unsigned id = cell * per_socket; id < (cell + 1) * per_socket; ++id) {
          numa.vcpus.push_back(id);
        }
        spec.numa_cells.push_back(std::move(numa));
      }
    }
    const bool pinned = rng() % 3 == 0;
    if (pinned) {
      for (unsigned id = 0; id < spec.current_vcpus; ++id) spec.pins[id] = {id % 2};  // boot vCPUs
      spec.host_cpus = 2;
    }
    hv_.AddDomain(spec);
    auto vm = testing::MakeVm(name, 1);
    vm.metadata.uid = "uid-" + name;
    if (pinned) vm.spec.cpu.pinning = crd::PinningSpec{crd::PinningPolicy::kDealt, "0-1"};
    auto rival = testing::MakeVm(name + "-rival", 1);
    rival.spec.domain = name;
    rival.metadata.uid = "uid-rival-" + name;
    std::vector<StepRecord> all_steps;

    for (int change = 0; change < 12; ++change) {
      int64_t desired = threads * (1 + static_cast<int64_t>(rng() % cores));
      if (rng() % 8 == 0) desired += 1;  // not whole cores: refused, nothing changes
      SetDesired(vm, desired);
      if (rng() % 3 == 0) {
        unsigned id = 1 + rng() % (spec.maximum_vcpus - 1);
        hv_.FailVcpu(name, id,
                     Fault{ErrorCode::kInternal, "random fault", 1, 1 + static_cast<int>(rng() % 3)});
      }
      if (rng() % 4 == 0) hv_.SetUnplugTimesOut(name, true);
      Result r = Pass(vm);
      all_steps.insert(all_steps.end(), r.steps.begin(), r.steps.end());
      bool failed = false;
      for (const auto& step : r.steps) {
        failed |= !step.result.ok() && step.result.code() != ErrorCode::kTimeout;
      }
      // A pass that was refused (not whole cores, above the maximum) changes nothing, so it cannot repair a half
      // core an earlier failure left (its condition says which); every other pass that had
      // no failed step ends with whole cores.
      const std::string why = Cond(vm, condition::kVcpusSynced).reason;
      const bool refused = why == ReasonName(Reason::kTopologyMismatch) ||
                           why == ReasonName(Reason::kExceedsMaximum);
      if (!failed && !refused) {
        EXPECT_EQ(HalfCores(name, threads, vm), std::vector<unsigned>{})
            << name << " after a pass without a failure, desired " << desired << ": "
            << Cond(vm, condition::kVcpusSynced).reason << " "
            << Cond(vm, condition::kVcpusSynced).message << " enabled "
            << vm.status.vcpus->enabled << " pending " << vm.status.vcpus->pending << " steps "
            << r.steps.size();
      }
      if (pinned) {
        const auto domain = hv_.Peek(name);
        for (const auto& v : domain->vcpus) {
          EXPECT_TRUE(!v.enabled || !v.pin.empty()) << name << ": vCPU " << v.id << " unpinned";
        }
      }
      SetDesired(rival, threads * (1 + static_cast<int64_t>(rng() % cores)));
      Result theirs = Pass(rival);
      EXPECT_TRUE(theirs.steps.empty()) << name << ": the rival changed the domain";
      EXPECT_EQ(Cond(rival, condition::kReady).reason, ReasonName(Reason::kDomainClaimed));
      ASSERT_TRUE(hv_.Peek(name)->claim.has_value());
      EXPECT_EQ(hv_.Peek(name)->claim->owner, vm.Key()) << name << ": two owners";
      if (rng() % 2 == 0) {
        hv_.SetUnplugTimesOut(name, false);
        hv_.CompletePendingUnplugs(name);
      }
    }
    hv_.ClearFaults();
    hv_.CompletePendingUnplugs(name);
    if (*vm.spec.cpu.vcpus % threads != 0) SetDesired(vm, *vm.spec.cpu.vcpus - 1);
    for (int i = 0; i < 20; ++i) {
      Result r = Pass(vm);
      all_steps.insert(all_steps.end(), r.steps.begin(), r.steps.end());
      if (Cond(vm, condition::kReady).status == "True") break;
    }
    EXPECT_EQ(Cond(vm, condition::kReady).status, "True") << name << ": "
                                                          << Cond(vm, condition::kReady).message;
    EXPECT_EQ(Enabled(name), static_cast<unsigned>(*vm.spec.cpu.vcpus)) << name;
    EXPECT_EQ(HalfCores(name, threads, vm), std::vector<unsigned>{}) << name;
    EXPECT_TRUE(hv_.Peek(name)->vcpus[0].enabled);
    for (const auto& step : all_steps) {
      EXPECT_NE(step.id, 0) << name;
      // The fake answers "already in the requested state" to a step that was already done.
      EXPECT_EQ(step.result.message().find("already in the requested state"), std::string::npos)
          << name << " vcpu " << step.id << " " << step.operation;
    }
  }
}

}  // namespace
}  // namespace hotplug::reconciler

// Property: random desired counts and random faults; once faults stop, passes converge to
// the desired count, never touch vCPU 0, and never ask for a state a vCPU already has.
#include <gtest/gtest.h>

#include <random>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::ErrorCode;
using backends::fake::DomainSpec;
using backends::fake::Fault;

class PropertyTest : public testing::ReconcilerFixture {};

TEST_F(PropertyTest, RandomDesiredCountsAndFaultsConvergeSafely) {
  std::mt19937 rng(20261125);
  for (int round = 0; round < 40; ++round) {
    const std::string name = "vm" + std::to_string(round);
    const unsigned maximum = 2 + rng() % 15;
    DomainSpec spec;
    spec.name = name;
    spec.maximum_vcpus = maximum;
    spec.current_vcpus = 1 + rng() % maximum;
    hv_.AddDomain(spec);
    auto vm = testing::MakeVm(name, 1);
    std::vector<StepRecord> all_steps;

    for (int change = 0; change < 12; ++change) {
      SetDesired(vm, 1 + static_cast<int64_t>(rng() % maximum));
      if (rng() % 3 == 0) {
        unsigned id = 1 + rng() % (maximum - 1 == 0 ? 1 : maximum - 1);
        hv_.FailVcpu(name, id, Fault{ErrorCode::kInternal, "random fault", 1, 1 + static_cast<int>(rng() % 3)});
      }
      if (rng() % 4 == 0) hv_.SetUnplugTimesOut(name, true);
      Result r = Pass(vm);
      all_steps.insert(all_steps.end(), r.steps.begin(), r.steps.end());
      if (rng() % 2 == 0) {
        hv_.SetUnplugTimesOut(name, false);
        hv_.CompletePendingUnplugs(name);
      }
    }
    hv_.ClearFaults();
    hv_.CompletePendingUnplugs(name);
    for (int i = 0; i < 20; ++i) {
      Result r = Pass(vm);
      all_steps.insert(all_steps.end(), r.steps.begin(), r.steps.end());
      if (Cond(vm, condition::kReady).status == "True") break;
    }
    EXPECT_EQ(Cond(vm, condition::kReady).status, "True") << name << ": "
                                                          << Cond(vm, condition::kReady).message;
    EXPECT_EQ(Enabled(name), static_cast<unsigned>(*vm.spec.cpu.vcpus)) << name;
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

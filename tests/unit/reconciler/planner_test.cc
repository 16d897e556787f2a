// Planning rules, table-driven: which vCPUs, in which order, or why none.
#include "reconciler/planner.h"

#include <gtest/gtest.h>

#include "reconciler/reconciler.h"

namespace hotplug::reconciler {
namespace {

using backends::DomainObservation;
using backends::VcpuInfo;

// enabled: ids enabled with order = position in the list + 1.
DomainObservation Domain(unsigned maximum, std::vector<unsigned> enabled) {
  DomainObservation d;
  d.name = "vm";
  d.maximum_vcpus = maximum;
  for (unsigned i = 0; i < maximum; ++i) {
    VcpuInfo v;
    v.id = i;
    v.hotpluggable = i != 0;
    d.vcpus.push_back(v);
  }
  for (size_t k = 0; k < enabled.size(); ++k) {
    d.vcpus[enabled[k]].enabled = true;
    d.vcpus[enabled[k]].order = static_cast<unsigned>(k + 1);
  }
  return d;
}

TEST(PlannerTest, Table) {
  struct Case {
    const char* name;
    DomainObservation domain;
    int64_t desired;
    std::vector<unsigned> plug;
    std::vector<unsigned> unplug;
    std::optional<Reason> blocked;
  };
  const Case cases[] = {
      {"grow takes lowest free ids", Domain(8, {0, 3}), 4, {1, 2}, {}, std::nullopt},
      {"shrink takes highest order", Domain(8, {0, 5, 2, 7}), 2, {}, {7, 2}, std::nullopt},
      {"equal does nothing", Domain(4, {0, 1}), 2, {}, {}, std::nullopt},
      {"above maximum", Domain(4, {0}), 5, {}, {}, Reason::kExceedsMaximum},
      {"zero", Domain(4, {0}), 0, {}, {}, Reason::kBelowMinimum},
      {"vcpu0 stays even if plugged last", Domain(4, {1, 0}), 1, {}, {1}, std::nullopt},
  };
  for (const auto& c : cases) {
    VcpuView view = ViewVcpus(c.domain, {});
    VcpuPlan plan = PlanVcpuSteps(c.domain, view, c.desired);
    EXPECT_EQ(plan.plug, c.plug) << c.name;
    EXPECT_EQ(plan.unplug, c.unplug) << c.name;
    EXPECT_EQ(plan.blocked ? std::optional(plan.blocked->reason) : std::nullopt, c.blocked)
        << c.name;
  }
}

TEST(PlannerTest, NonHotpluggableVcpusAreNeverUnplugged) {
  DomainObservation d = Domain(4, {0, 1, 2, 3});
  d.vcpus[1].hotpluggable = false;
  VcpuPlan plan = PlanVcpuSteps(d, ViewVcpus(d, {}), 2);
  EXPECT_EQ(plan.unplug, (std::vector<unsigned>{3, 2}));
  plan = PlanVcpuSteps(d, ViewVcpus(d, {}), 1);
  ASSERT_TRUE(plan.blocked);
  EXPECT_EQ(plan.blocked->reason, Reason::kBelowMinimum);
  EXPECT_TRUE(plan.unplug.empty());
}

TEST(PlannerTest, AfterATcgUnplugNoSlotIsPlugged) {
  DomainObservation d = Domain(4, {0, 1});
  d.tcg = true;
  for (auto& v : d.vcpus) v.present_in_qemu = v.enabled && v.id != 1;
  d.unplugged_vcpus = {1};  // stale: libvirt still says enabled, QEMU removed it
  VcpuPlan plan = PlanVcpuSteps(d, ViewVcpus(d, {}), 3);
  EXPECT_TRUE(plan.plug.empty());
  EXPECT_EQ(plan.shortfall, 2u);
  ASSERT_TRUE(plan.shortfall_why);
  EXPECT_EQ(plan.shortfall_why->reason, Reason::kReplugRefused);
  EXPECT_NE(plan.shortfall_why->message.find("plugging vCPU 1-3 is refused"), std::string::npos)
      << plan.shortfall_why->message;

  d.tcg = false;  // without TCG the free slots are plugged (vCPU 1 still counts as stale)
  EXPECT_EQ(PlanVcpuSteps(d, ViewVcpus(d, {}), 3).plug, (std::vector<unsigned>{2, 3}));
}

TEST(PlannerTest, StaleAndPendingVcpusAreNotCountedAsPresent) {
  DomainObservation d = Domain(4, {0, 1, 2, 3});
  d.vcpus[3].present_in_qemu = false;
  VcpuView view = ViewVcpus(d, {2});
  EXPECT_EQ(view.stale, (std::vector<unsigned>{3}));
  EXPECT_EQ(view.pending, (std::vector<unsigned>{2}));
  EXPECT_EQ(view.effective, (std::vector<unsigned>{0, 1}));
  EXPECT_TRUE(PlanVcpuSteps(d, view, 2).unplug.empty());
}

TEST(PlannerTest, PendingVcpusTheSpecWantsAgainCountAsPlugged) {
  DomainObservation d = Domain(6, {0, 1, 2, 3, 4});
  d.vcpus[4].present_in_qemu = false;  // stale: never counted, never released
  VcpuView view = ViewVcpus(d, {2, 3});
  ReleaseWantedPending(view, 2);  // still wants 2 and 3 gone: keep waiting
  EXPECT_EQ(view.pending, (std::vector<unsigned>{2, 3}));
  EXPECT_EQ(view.effective, (std::vector<unsigned>{0, 1}));
  ReleaseWantedPending(view, 3);  // wants one of them back: still a partial wait
  EXPECT_EQ(view.pending, (std::vector<unsigned>{2, 3}));
  ReleaseWantedPending(view, 4);  // wants every vCPU QEMU has: nothing to wait for
  EXPECT_TRUE(view.pending.empty());
  EXPECT_EQ(view.effective, (std::vector<unsigned>{0, 1, 2, 3}));
  EXPECT_EQ(view.stale, (std::vector<unsigned>{4}));
  EXPECT_TRUE(PlanVcpuSteps(d, view, 4).unplug.empty());
}

TEST(PlannerTest, TopologyWithThreadsNeedsWholeCores) {
  DomainObservation d = Domain(8, {0, 1});
  d.topology.threads = 2;
  auto mismatch = PlanVcpuSteps(d, ViewVcpus(d, {}), 3).blocked;
  ASSERT_TRUE(mismatch);
  EXPECT_EQ(mismatch->reason, Reason::kTopologyMismatch);
  EXPECT_FALSE(PlanVcpuSteps(d, ViewVcpus(d, {}), 4).blocked);
}

}  // namespace
}  // namespace hotplug::reconciler

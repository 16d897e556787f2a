// The fake behaves like libvirt + QEMU where the reconciler depends on it.
#include "backends/fake/fake_hypervisor.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "backends/tcg_replug.h"

namespace hotplug::backends::fake {
namespace {

TEST(FakeHypervisorTest, MirrorsLibvirtErrors) {
  FakeHypervisor hv;
  hv.AddDomain({.name = "vm", .maximum_vcpus = 4, .current_vcpus = 2});
  EXPECT_EQ(hv.SetVcpu("vm", 0, false, false).native_code(), 84);  // vCPU 0 can't be unplugged
  EXPECT_EQ(hv.SetVcpu("vm", 9, true, false).native_code(), 8);
  EXPECT_EQ(hv.SetVcpu("vm", 1, true, false).native_code(), 8);  // already in requested state
  EXPECT_EQ(hv.SetVcpu("nope", 1, true, false).code(), ErrorCode::kDomainNotFound);
  EXPECT_EQ(hv.OnlineGuestVcpus("vm", {1}).native_code(), 74);
}

TEST(FakeHypervisorTest, PlugOrderIsRecorded) {
  FakeHypervisor hv;
  hv.AddDomain({.name = "vm", .maximum_vcpus = 4, .current_vcpus = 1});
  ASSERT_TRUE(hv.SetVcpu("vm", 3, true, false).ok());
  ASSERT_TRUE(hv.SetVcpu("vm", 1, true, false).ok());
  auto o = hv.Peek("vm");
  EXPECT_LT(o->vcpus[3].order, o->vcpus[1].order);
  EXPECT_FALSE(o->vcpus[0].hotpluggable);
}

TEST(FakeHypervisorTest, TcgUnplugTimesOutAndLeavesLibvirtStale) {
  FakeHypervisor hv;
  hv.AddDomain({.name = "vm", .maximum_vcpus = 4, .current_vcpus = 3, .tcg = true});
  hv.SetUnplugTimesOut("vm", true);
  Status s = hv.SetVcpu("vm", 2, false, false);
  EXPECT_EQ(s.code(), ErrorCode::kTimeout);
  EXPECT_EQ(s.native_code(), 68);
  auto o = hv.Peek("vm");
  EXPECT_TRUE(o->vcpus[2].enabled);
  EXPECT_EQ(o->vcpus[2].present_in_qemu, false);
  EXPECT_EQ(o->vcpus[1].present_in_qemu, true);
  EXPECT_EQ(o->unplugged_vcpus, (std::set<unsigned>{2}));
  EXPECT_FALSE(VcpuPlugIsSafe(*o, o->vcpus[2]));
  EXPECT_FALSE(VcpuPlugIsSafe(*o, o->vcpus[3]));  // never used, refused all the same
  EXPECT_EQ(hv.SetVcpu("vm", 3, true, false).code(), ErrorCode::kUnsupported);
  EXPECT_EQ(
      hv.ApplyMemoryStep("vm", {MemoryStep::Op::kAttachDimm, "", 128ull << 20, 0}, false).code(),
      ErrorCode::kUnsupported);
  EXPECT_EQ(hv.SetVcpu("vm", 2, false, false).native_code(), 1);  // unknown cause
}

TEST(FakeHypervisorTest, CompletingPendingUnplugFiresTheEventSink) {
  FakeHypervisor hv;
  hv.AddDomain({.name = "vm", .maximum_vcpus = 4, .current_vcpus = 3});
  std::vector<std::string> events;
  hv.SetEventSink([&](const std::string& d) { events.push_back(d); });
  hv.SetUnplugTimesOut("vm", true);
  EXPECT_EQ(hv.SetVcpu("vm", 2, false, false).code(), ErrorCode::kTimeout);
  hv.CompletePendingUnplugs("vm");
  EXPECT_EQ(events, std::vector<std::string>{"vm"});
  EXPECT_FALSE(hv.Peek("vm")->vcpus[2].enabled);
}

TEST(FakeHypervisorTest, ItsOwnClaimIsNoEventButARelease) {
  // As the libvirt backend: the claim this process writes is not news to it.
  FakeHypervisor hv;
  hv.AddDomain({.name = "vm", .maximum_vcpus = 4, .current_vcpus = 1});
  std::vector<std::string> events;
  hv.SetEventSink([&](const std::string& d) { events.push_back(d); });
  const DomainClaim a{"default/a", "uid-a", ""};
  ASSERT_EQ(hv.ClaimDomain("vm", a, std::nullopt).value(), a);
  EXPECT_TRUE(events.empty());
  ASSERT_TRUE(hv.ReleaseDomain("vm", a).ok());
  EXPECT_EQ(events, std::vector<std::string>{"vm"});
}

TEST(FakeHypervisorTest, IsSafeUnderConcurrentUse) {
  FakeHypervisor hv;
  for (int i = 0; i < 8; ++i) {
    hv.AddDomain({.name = "vm" + std::to_string(i), .maximum_vcpus = 64, .current_vcpus = 1});
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&hv, t] {
      const std::string name = "vm" + std::to_string(t);
      for (unsigned id = 1; id < 64; ++id) {
        ASSERT_TRUE(hv.SetVcpu(name, id, true, true).ok());
        ASSERT_TRUE(hv.Observe(name).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(hv.SuccessfulCalls().size(), 8u * 63u);
}

TEST(FakeHypervisorTest, AClaimIsKeptInTheDomainAndOnlyItsOwnerReleasesIt) {
  FakeHypervisor hv;
  hv.AddDomain({.name = "vm", .maximum_vcpus = 4, .current_vcpus = 1});
  const DomainClaim a{"default/a", "uid-a", ""};
  const DomainClaim b{"default/b", "uid-b", "node-1"};
  EXPECT_FALSE(hv.Peek("vm")->claim.has_value());
  EXPECT_EQ(hv.ClaimDomain("vm", a, std::nullopt).value(), a);
  EXPECT_EQ(hv.ClaimDomain("vm", b, std::nullopt).value(), a);  // held: the holder answers
  EXPECT_TRUE(hv.ReleaseDomain("vm", b).ok());                  // not b's: nothing happens
  EXPECT_EQ(hv.Peek("vm")->claim, a);
  EXPECT_EQ(hv.ClaimDomain("vm", b, a).value(), b);  // replacing a claim found stale
  EXPECT_TRUE(hv.ReleaseDomain("vm", b).ok());
  EXPECT_FALSE(hv.Peek("vm")->claim.has_value());
  EXPECT_EQ(hv.ClaimDomain("gone", a, std::nullopt).status().code(), ErrorCode::kDomainNotFound);
  EXPECT_TRUE(hv.ReleaseDomain("gone", a).ok());
}

}  // namespace
}  // namespace hotplug::backends::fake

// The guest OS (issue 16, item 5): the family from a libosinfo id or spec.guest.os, and an
// unplug the guest cannot do refused with UnplugUnsupportedByGuest before any call, instead
// of a 5 s libvirt timeout.
#include "reconciler/guest_os.h"

#include <gtest/gtest.h>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::fake::DomainSpec;
using testing::MakeVm;

TEST(GuestOsTest, FamiliesFromLibosinfoIdsAndWords) {
  const std::pair<const char*, OsFamily> cases[] = {
      {"http://microsoft.com/win/10", OsFamily::kWindows},
      {"http://microsoft.com/win/2k22", OsFamily::kWindows},
      {"Windows", OsFamily::kWindows},
      {"http://debian.org/debian/12", OsFamily::kLinux},
      {"http://redhat.com/rhel/9.2", OsFamily::kLinux},
      {"http://ubuntu.com/ubuntu/22.04", OsFamily::kLinux},
      {"http://libosinfo.org/linux/2022", OsFamily::kLinux},
      {"linux", OsFamily::kLinux},
      {"http://freebsd.org/freebsd/13.1", OsFamily::kUnknown},
      {"", OsFamily::kUnknown},
  };
  for (const auto& [os, family] : cases) EXPECT_EQ(ClassifyOs(os), family) << os;
  EXPECT_TRUE(CapabilitiesOf(OsFamily::kWindows).vcpu_plug);
  EXPECT_FALSE(CapabilitiesOf(OsFamily::kWindows).vcpu_unplug);
  EXPECT_TRUE(CapabilitiesOf(OsFamily::kLinux).vcpu_unplug);
  EXPECT_TRUE(CapabilitiesOf(OsFamily::kUnknown).vcpu_unplug) << "as before: nothing refused";
}

TEST(GuestOsTest, SpecGuestOsOverridesTheDomainsMetadata) {
  GuestOs guest = ResolveGuestOs("linux", "http://microsoft.com/win/10");
  EXPECT_EQ(guest.capabilities->family, OsFamily::kLinux);
  EXPECT_EQ(guest.Describe(), "Linux (linux, from spec.guest.os)");
  guest = ResolveGuestOs("", "http://microsoft.com/win/10");
  EXPECT_EQ(guest.Describe(),
            "Windows (http://microsoft.com/win/10, from the domain's libosinfo metadata)");
}

// Between passes (the autoscaler) the guest is what spec.guest.os says, else what the last
// pass described in status.guestOS.
TEST(GuestOsTest, LastKnownCapabilitiesReadTheSpecThenTheStatus) {
  const std::string windows = ResolveGuestOs("", "http://microsoft.com/win/10").Describe();
  EXPECT_FALSE(LastKnownCapabilities("", windows).vcpu_unplug);
  EXPECT_FALSE(LastKnownCapabilities("", ResolveGuestOs("windows", "").Describe()).vcpu_unplug);
  EXPECT_TRUE(LastKnownCapabilities("linux", windows).vcpu_unplug);
  EXPECT_TRUE(LastKnownCapabilities("", "").vcpu_unplug);
  EXPECT_TRUE(LastKnownCapabilities("", "Windowsish (x, from y)").vcpu_unplug);
  EXPECT_EQ(LastKnownCapabilities("", ResolveGuestOs("linux", "").Describe()).family,
            OsFamily::kLinux);
}

class GuestOsPassTest : public testing::ReconcilerFixture {
 protected:
  void AddDomain(const std::string& guest_os, unsigned current = 3) {
    DomainSpec spec;
    spec.name = "vm";
    spec.maximum_vcpus = 8;
    spec.current_vcpus = current;
    spec.memory_slots = 2;
    spec.guest_os = guest_os;
    hv_.AddDomain(spec);
  }
};

TEST_F(GuestOsPassTest, AWindowsGuestGetsVcpusButNoneIsTakenAway) {
  AddDomain("http://microsoft.com/win/10", 1);
  auto vm = MakeVm("vm", 3);
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 3u) << "Windows hot-adds vCPUs";
  EXPECT_EQ(vm.status.guest_os,
            "Windows (http://microsoft.com/win/10, from the domain's libosinfo metadata)");
  const size_t calls = hv_.SetVcpuCallCount();
  SetDesired(vm, 2);
  Result r = Pass(vm);
  EXPECT_TRUE(r.steps.empty());
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls) << "no unplug is asked of a guest that cannot";
  const auto& synced = Cond(vm, condition::kVcpusSynced);
  EXPECT_EQ(synced.reason, ReasonName(Reason::kUnplugUnsupportedByGuest));
  EXPECT_NE(synced.message.find("Windows hot-adds vCPUs and memory but removes them only at a "
                                "reboot; ask for at least the 3 vCPUs it has"),
            std::string::npos)
      << synced.message;
  EXPECT_EQ(Cond(vm, condition::kReady).reason, ReasonName(Reason::kUnplugUnsupportedByGuest));
  EXPECT_EQ(r.requeue_after.count(), 0) << "nothing to wait for: a person must act";
}

TEST_F(GuestOsPassTest, SpecGuestOsTellsWhatTheMetadataDoesNot) {
  AddDomain("");
  auto vm = MakeVm("vm", 2);
  vm.spec.guest.os = "windows";
  Pass(vm);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason,
            ReasonName(Reason::kUnplugUnsupportedByGuest));
  EXPECT_EQ(Enabled("vm"), 3u);
  vm.spec.guest.os = "linux";
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 2u);
}

TEST_F(GuestOsPassTest, AWindowsGuestKeepsItsDimms) {
  AddDomain("http://microsoft.com/win/2k22");
  ASSERT_TRUE(
      hv_.ApplyMemoryStep("vm", {backends::MemoryStep::Op::kAttachDimm, "", 128ull << 20, 0}, false)
          .ok());
  auto vm = MakeVm("vm", std::nullopt);
  vm.spec.memory.size = *crd::Quantity::Parse("1Gi");
  vm.spec.memory.allow_shrink = true;
  Result r = Pass(vm);
  EXPECT_TRUE(r.steps.empty());
  EXPECT_EQ(Cond(vm, condition::kMemorySynced).reason,
            ReasonName(Reason::kUnplugUnsupportedByGuest));
}

TEST_F(GuestOsPassTest, ALinuxOrUnknownGuestUnplugsAsBefore) {
  AddDomain("http://freebsd.org/freebsd/13.1");
  auto vm = MakeVm("vm", 2);
  Pass(vm);
  EXPECT_EQ(Enabled("vm"), 2u);
  EXPECT_EQ(Cond(vm, condition::kReady).status, "True");
}

}  // namespace
}  // namespace hotplug::reconciler

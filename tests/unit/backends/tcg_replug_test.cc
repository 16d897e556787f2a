// The TCG re-plug rule (design §4), table-driven: after an unplug in a TCG QEMU process no
// vCPU plug and no DIMM change is safe; without TCG, or before any unplug, everything is.
#include "backends/tcg_replug.h"

#include <gtest/gtest.h>

namespace hotplug::backends {
namespace {

TEST(TcgReplugTest, PlugSafety) {
  struct Case {
    const char* name;
    bool tcg;
    std::set<unsigned> unplugged;
    unsigned id;
    std::optional<bool> present_in_qemu;
    bool safe;
  };
  const Case cases[] = {
      {"KVM, after an unplug", false, {2}, 2, false, true},
      {"TCG, nothing unplugged yet", true, {}, 3, false, true},
      {"TCG, the unplugged vCPU itself", true, {2}, 2, false, false},
      {"TCG, a never-used slot after an unplug", true, {2}, 3, false, false},
      {"TCG, QEMU's presence unknown", true, {2}, 3, std::nullopt, false},
      {"TCG, unplug requested, QEMU still has it", true, {2}, 2, true, false},
      {"TCG, a vCPU QEMU still has", true, {2}, 1, true, true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(VcpuPlugIsSafe(c.tcg, c.unplugged, c.id, c.present_in_qemu), c.safe) << c.name;
  }
  EXPECT_TRUE(DimmChangeIsSafe(false, {2}));
  EXPECT_TRUE(DimmChangeIsSafe(true, {}));
  EXPECT_FALSE(DimmChangeIsSafe(true, {2}));
}

TEST(TcgReplugTest, TheObservationCarriesTheFacts) {
  DomainObservation domain;
  domain.tcg = true;
  domain.unplugged_vcpus = {3};
  VcpuInfo present{.id = 1, .enabled = true, .present_in_qemu = true};
  VcpuInfo fresh{.id = 5, .present_in_qemu = false};
  EXPECT_TRUE(VcpuPlugIsSafe(domain, present));
  EXPECT_FALSE(VcpuPlugIsSafe(domain, fresh));
}

TEST(TcgReplugTest, RefusalsSayWhyAndWhatToDo) {
  Status plug = RefuseVcpuPlug("web-01", 4, {2, 3});
  EXPECT_EQ(plug.code(), ErrorCode::kUnsupported);
  EXPECT_NE(plug.message().find("vCPU 2-3 was unplugged earlier in this QEMU process"),
            std::string::npos)
      << plug.message();
  EXPECT_NE(plug.message().find("restarted"), std::string::npos);
  Status dimm = RefuseDimmChange("web-01", MemoryStep::Op::kDetachDimm, {2});
  EXPECT_EQ(dimm.code(), ErrorCode::kUnsupported);
  EXPECT_NE(dimm.message().find("detach a DIMM from 'web-01'"), std::string::npos)
      << dimm.message();
}

}  // namespace
}  // namespace hotplug::backends

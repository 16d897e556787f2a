// What the real backend says about domains it cannot change: an unknown one, and a defined
// one that is shut off (observed, never changed).
#include "tests/e2e/e2e_test_support.h"

namespace hotplug::e2e {
namespace {

using backends::libvirt::LibvirtHypervisor;

class DomainErrorsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
  }
  LibvirtHypervisor backend_;
};

TEST_F(DomainErrorsE2E, UnknownDomainIsDomainNotFound) {
  const std::string name = "hotplug-e2e-no-such-domain";
  auto observed = backend_.Observe(name);
  EXPECT_EQ(observed.status().code(), ErrorCode::kDomainNotFound) << observed.status().ToString();
  EXPECT_EQ(observed.status().native_code(), 42);
  EXPECT_NE(observed.status().message().find(name), std::string::npos);
  EXPECT_EQ(backend_.SetVcpu(name, 1, true, false).code(), ErrorCode::kDomainNotFound);
  backends::MemoryStep balloon;
  balloon.bytes = 512ull << 20;
  EXPECT_EQ(backend_.ApplyMemoryStep(name, balloon, false).code(), ErrorCode::kDomainNotFound);
  EXPECT_EQ(backend_.Observe("00000000-0000-0000-0000-000000000000").status().code(),
            ErrorCode::kDomainNotFound);
}

TEST_F(DomainErrorsE2E, ShutOffDomainIsObservedButNotChanged) {
  const std::string name = UniqueDomainName("shutoff");
  CommandResult defined = RunGuestScript({"define", name, "--max-vcpus", "4", "--vcpus", "1"});
  ASSERT_EQ(defined.exit_code, 0) << defined.output;

  auto observed = backend_.Observe(name);
  ASSERT_TRUE(observed.ok()) << observed.status().ToString();
  const DomainObservation& observation = observed.value();
  EXPECT_EQ(observation.state, backends::DomainState::kShutOff);
  EXPECT_TRUE(observation.persistent);
  EXPECT_TRUE(observation.tcg);
  EXPECT_EQ(observation.maximum_vcpus, 4u);
  ASSERT_EQ(observation.vcpus.size(), 4u);
  EXPECT_EQ(EnabledCount(observation), 1u);
  EXPECT_FALSE(observation.vcpus[0].present_in_qemu.has_value()) << "no QEMU to ask";
  EXPECT_FALSE(observation.guest_agent_available);

  backends::Status plug = backend_.SetVcpu(name, 1, true, true);
  EXPECT_EQ(plug.code(), ErrorCode::kDomainNotRunning) << plug.ToString();
  backends::MemoryStep dimm;
  dimm.op = backends::MemoryStep::Op::kAttachDimm;
  dimm.bytes = 128ull << 20;
  backends::Status attach = backend_.ApplyMemoryStep(name, dimm, false);
  EXPECT_EQ(attach.code(), ErrorCode::kDomainNotRunning) << attach.ToString();

  auto after = backend_.Observe(name);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(EnabledCount(after.value()), 1u) << "the shut-off definition changed";
  EXPECT_EQ(RunGuestScript({"destroy", name}).exit_code, 0);
}

}  // namespace
}  // namespace hotplug::e2e

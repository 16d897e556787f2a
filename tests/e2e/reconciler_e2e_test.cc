// The reconciler driven end to end through the real backend: an ElasticVM asking for 3
// vCPUs brings a booted TCG guest from 1 to 3 online CPUs, one per-vCPU call each; asking
// for 2 again unplugs one, which TCG leaves pending, and the VM stays up.
#include "crd/elasticvm.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"
#include "tests/e2e/e2e_test_support.h"

namespace hotplug::e2e {
namespace {

using backends::libvirt::LibvirtHypervisor;
using namespace std::chrono_literals;

class ReconcilerE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    std::string error;
    guest_ = Guest::Boot(UniqueDomainName("reconcile"),
                         {"--max-vcpus", "4", "--vcpus", "1", "--virtio-mem-mib", "0"}, &error);
    ASSERT_NE(guest_, nullptr) << error;
    object_.metadata.name = "e2e";
    object_.metadata.namespace_ = "default";
    object_.metadata.generation = 1;
    object_.spec.domain = guest_->name();
    object_.spec.persist = false;
  }

  // Reconciles until VCPUsSynced is True or `timeout` passes; returns every step taken.
  std::vector<reconciler::StepRecord> ReconcileUntilSynced(std::chrono::seconds timeout,
                                                           const char* want_reason = "Synced") {
    std::vector<reconciler::StepRecord> steps;
    PollUntil(
        [&] {
          reconciler::Result result = reconciler_.Reconcile(object_);
          object_.status = result.status;
          steps.insert(steps.end(), result.steps.begin(), result.steps.end());
          const crd::Condition* synced =
              crd::FindCondition(object_.status, reconciler::condition::kVcpusSynced);
          return synced != nullptr && synced->reason == want_reason;
        },
        timeout, 200ms);
    return steps;
  }

  std::unique_ptr<Guest> guest_;
  LibvirtHypervisor backend_;
  reconciler::SystemClock clock_;
  reconciler::Reconciler reconciler_{backend_, clock_};
  crd::ElasticVM object_;
};

TEST_F(ReconcilerE2E, PlugsOneToThreeVcpusAndTheGuestOnlinesThem) {
  object_.spec.cpu.vcpus = 3;
  auto steps = ReconcileUntilSynced(60s);
  const crd::Condition* synced =
      crd::FindCondition(object_.status, reconciler::condition::kVcpusSynced);
  ASSERT_NE(synced, nullptr);
  EXPECT_EQ(synced->status, "True") << synced->reason << ": " << synced->message;
  std::vector<int64_t> plugged;
  for (const auto& step : steps) {
    EXPECT_TRUE(step.result.ok()) << step.operation << " " << step.id << ": "
                                  << step.result.ToString();
    if (step.operation == "plug") plugged.push_back(step.id);
  }
  EXPECT_EQ(plugged, (std::vector<int64_t>{1, 2})) << "one call per vCPU, lowest ids first";
  ASSERT_TRUE(object_.status.vcpus.has_value());
  EXPECT_EQ(object_.status.vcpus->current, 3);
  EXPECT_TRUE(guest_->WaitForReport([](const GuestReport& r) { return r.online_cpus == 3; }, 60s))
      << "the guest did not bring 3 CPUs online";

  // Shrinking to 2 under TCG: libvirt times out, the reconciler says UnplugPending, the VM
  // keeps running and the guest lets the CPU go.
  object_.spec.cpu.vcpus = 2;
  object_.metadata.generation = 2;
  reconciler::Result result = reconciler_.Reconcile(object_);
  object_.status = result.status;
  const crd::Condition* after =
      crd::FindCondition(object_.status, reconciler::condition::kVcpusSynced);
  ASSERT_NE(after, nullptr);
  std::printf("after unplug: VCPUsSynced=%s reason=%s message=%s\n", after->status.c_str(),
              after->reason.c_str(), after->message.c_str());
  EXPECT_NE(after->reason, reconciler::ReasonName(reconciler::Reason::kPartialFailure)) << after->message;
  EXPECT_TRUE(guest_->WaitForReport([](const GuestReport& r) { return r.online_cpus == 2; }, 30s));
  EXPECT_EQ(DomainStateOf(guest_->name()), "running");
}

}  // namespace
}  // namespace hotplug::e2e

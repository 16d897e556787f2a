// One owner per domain on the real backend (issue 16, item 1): two ElasticVMs naming one
// booted guest, each reconciled through its own libvirt connection as two agents would. The
// first claims the domain in its libvirt metadata; the second is told who owns it and changes
// nothing; the owner's release reaches the other connection as a metadata-change event, and
// the second then takes the guest over.
#include <atomic>
#include <mutex>

#include "crd/elasticvm.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"
#include "tests/e2e/e2e_test_support.h"

namespace hotplug::e2e {
namespace {

using backends::libvirt::LibvirtHypervisor;
using namespace std::chrono_literals;

crd::ElasticVM Object(const std::string& name, const std::string& domain, int64_t vcpus) {
  crd::ElasticVM object;
  object.metadata.name = name;
  object.metadata.namespace_ = "default";
  object.metadata.uid = "uid-" + name;
  object.metadata.generation = 1;
  object.spec.domain = domain;
  object.spec.persist = false;
  object.spec.cpu.vcpus = vcpus;
  return object;
}

const crd::Condition& Ready(const crd::ElasticVM& object) {
  static const crd::Condition none;
  const crd::Condition* ready = crd::FindCondition(object.status, reconciler::condition::kReady);
  return ready != nullptr ? *ready : none;
}

class OwnerClaimE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    std::string error;
    guest_ = Guest::Boot(
        "shapes-claim-" + std::to_string(getpid()),
        {"--max-vcpus", "4", "--vcpus", "1", "--virtio-mem-mib", "0", "--persistent"}, &error);
    ASSERT_NE(guest_, nullptr) << error;
    options_a_.claim_manager = "node/agent-a";
    options_b_.claim_manager = "node/agent-b";
  }

  // One pass; the status is kept on the object as the controller keeps it.
  reconciler::Result Pass(reconciler::Reconciler& reconciler, crd::ElasticVM& object) {
    reconciler::Result result = reconciler.Reconcile(object);
    object.status = result.status;
    return result;
  }

  std::string Metadata(bool inactive) {
    std::vector<std::string> args = {"metadata", guest_->name(), "https://hotplug.dev/xmlns/owner"};
    args.push_back(inactive ? "--config" : "--live");
    return Virsh(args).output;
  }

  std::unique_ptr<Guest> guest_;
  LibvirtHypervisor backend_a_, backend_b_;  // two connections: two agents
  reconciler::SystemClock clock_;
  reconciler::Options options_a_, options_b_;
};

TEST_F(OwnerClaimE2E, TheFirstClaimantOwnsTheGuestAndItsReleaseHandsItToTheOther) {
  std::mutex mu;
  std::vector<std::string> events_at_b;  // guarded by mu
  backend_b_.SetEventSink([&](const std::string& domain) {
    std::lock_guard lock(mu);
    events_at_b.push_back(domain);
  });
  reconciler::Reconciler agent_a(backend_a_, clock_, options_a_);
  reconciler::Reconciler agent_b(backend_b_, clock_, options_b_);
  crd::ElasticVM a = Object("a", guest_->name(), 2);
  crd::ElasticVM b = Object("b", guest_->name(), 3);

  const auto start = std::chrono::steady_clock::now();
  reconciler::Result first = Pass(agent_a, a);
  Measure("claim_and_plug_pass_ms", MillisecondsSince(start), "ms");
  ASSERT_EQ(Ready(a).status, "True") << Ready(a).reason << ": " << Ready(a).message;
  ASSERT_TRUE(first.claim.has_value());
  // The claim is in the domain itself, live and in its definition.
  for (bool inactive : {false, true}) {
    const std::string metadata = Metadata(inactive);
    EXPECT_NE(metadata.find("owner=\"default/a\""), std::string::npos) << metadata;
    EXPECT_NE(metadata.find("manager=\"node/agent-a\""), std::string::npos) << metadata;
  }
  ASSERT_TRUE(guest_->WaitForReport([](const GuestReport& r) { return r.online_cpus == 2; }, 60s));

  for (int i = 0; i < 3; ++i) {
    reconciler::Result second = Pass(agent_b, b);
    EXPECT_TRUE(second.steps.empty()) << "b changed a's guest";
    Pass(agent_a, a);
  }
  EXPECT_EQ(Ready(b).status, "False");
  EXPECT_EQ(Ready(b).reason, "DomainClaimed");
  EXPECT_NE(Ready(b).message.find("ElasticVM default/a (claimed by the hotplug-operator of "
                                  "node/agent-a"),
            std::string::npos)
      << Ready(b).message;
  EXPECT_EQ(EnabledCount(backend_a_.Observe(guest_->name()).value()), 2u);
  std::printf("b: %s: %s\n", Ready(b).reason.c_str(), Ready(b).message.c_str());

  // a is deleted: its agent releases the claim; b's connection hears of it.
  {
    std::lock_guard lock(mu);
    events_at_b.clear();
  }
  const auto released_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(backend_a_.ReleaseDomain(guest_->name(), *first.claim).ok());
  ASSERT_TRUE(PollUntil(
      [&] {
        std::lock_guard lock(mu);
        return std::find(events_at_b.begin(), events_at_b.end(), guest_->name()) !=
               events_at_b.end();
      },
      10s))
      << "no metadata-change event reached the other connection";
  Measure("claim_release_event_ms", MillisecondsSince(released_at), "ms");
  EXPECT_EQ(Metadata(false).find("owner="), std::string::npos);

  reconciler::Result takeover = Pass(agent_b, b);
  ASSERT_TRUE(takeover.claim.has_value());
  EXPECT_EQ(Ready(b).status, "True") << Ready(b).reason << ": " << Ready(b).message;
  EXPECT_NE(Metadata(false).find("owner=\"default/b\""), std::string::npos);
  ASSERT_TRUE(guest_->WaitForReport([](const GuestReport& r) { return r.online_cpus == 3; }, 60s));
  Pass(agent_a, a);
  EXPECT_EQ(Ready(a).reason, "DomainClaimed");
}

}  // namespace
}  // namespace hotplug::e2e

// One owner per domain (design §6): the first ElasticVM to claim a domain owns it; the others
// get DomainClaimed naming the owner and are never reconciled against it; a released or stale
// claim is taken over by the next claimant.
#include <gtest/gtest.h>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

using backends::DomainClaim;
using backends::fake::DomainSpec;
using testing::MakeVm;

class ClaimTest : public testing::ReconcilerFixture {
 protected:
  void SetUp() override {
    DomainSpec spec;
    spec.name = "vm-0";
    spec.maximum_vcpus = 8;
    spec.current_vcpus = 1;
    hv_.AddDomain(spec);
    a_ = Named("a", 3);
    b_ = Named("b", 6);
  }
  static crd::ElasticVM Named(const std::string& name, int64_t vcpus) {
    crd::ElasticVM vm = MakeVm(name, vcpus);
    vm.spec.domain = "vm-0";
    vm.metadata.uid = "uid-" + name;
    return vm;
  }
  static bool HasEvent(const Result& r, const std::string& reason) {
    for (const auto& e : r.events) {
      if (e.reason == reason) return true;
    }
    return false;
  }
  crd::ElasticVM a_, b_;
};

TEST_F(ClaimTest, TheFirstClaimantOwnsTheDomainAndTheSecondChangesNothing) {
  Result first = Pass(a_);
  EXPECT_EQ(Enabled("vm-0"), 3u);
  ASSERT_TRUE(first.claim.has_value());
  EXPECT_EQ(first.claim->owner, "default/a");
  EXPECT_TRUE(HasEvent(first, "Claimed"));
  ASSERT_TRUE(hv_.Peek("vm-0")->claim.has_value());
  EXPECT_EQ(hv_.Peek("vm-0")->claim->uid, "uid-a");

  const size_t calls = hv_.SetVcpuCallCount();
  for (int i = 0; i < 5; ++i) {
    Result second = Pass(b_);
    EXPECT_TRUE(second.steps.empty());
    EXPECT_FALSE(second.claim.has_value());
    Pass(a_);
  }
  EXPECT_EQ(hv_.SetVcpuCallCount(), calls) << "the two objects fought over the domain";
  EXPECT_EQ(Enabled("vm-0"), 3u);
  const auto& ready = Cond(b_, condition::kReady);
  EXPECT_EQ(ready.status, "False");
  EXPECT_EQ(ready.reason, ReasonName(Reason::kDomainClaimed));
  EXPECT_NE(ready.message.find("ElasticVM default/a"), std::string::npos) << ready.message;
  EXPECT_EQ(Cond(b_, condition::kVcpusSynced).reason, ReasonName(Reason::kDomainClaimed));
  EXPECT_FALSE(b_.status.vcpus.has_value()) << "the owner's numbers are not b's";
  EXPECT_EQ(Cond(a_, condition::kReady).status, "True");
}

TEST_F(ClaimTest, ReleasedDomainGoesToTheNextClaimant) {
  Pass(a_);
  Pass(b_);
  ASSERT_TRUE(hv_.ReleaseDomain("vm-0", {"default/a", "uid-a", ""}).ok());
  Result r = Pass(b_);
  ASSERT_TRUE(r.claim.has_value());
  EXPECT_EQ(Enabled("vm-0"), 6u);
  EXPECT_EQ(Cond(b_, condition::kReady).status, "True");
  EXPECT_EQ(hv_.Peek("vm-0")->claim->owner, "default/b");
  Pass(a_);
  EXPECT_EQ(Cond(a_, condition::kReady).reason, ReasonName(Reason::kDomainClaimed));
  EXPECT_EQ(Enabled("vm-0"), 6u);
}

TEST_F(ClaimTest, ANamesakeWithAnotherUidIsAnotherOwner) {
  Pass(a_);
  crd::ElasticVM recreated = Named("a", 5);
  recreated.metadata.uid = "uid-a-2";
  Pass(recreated);
  EXPECT_EQ(Cond(recreated, condition::kReady).reason, ReasonName(Reason::kDomainClaimed));
  EXPECT_EQ(Enabled("vm-0"), 3u);
}

TEST_F(ClaimTest, AStaleClaimIsTakenOverAndSaysFromWhom) {
  ASSERT_TRUE(hv_.ClaimDomain("vm-0", {"default/gone", "uid-gone", ""}, std::nullopt).ok());
  Pass(b_);
  EXPECT_EQ(Cond(b_, condition::kReady).reason, ReasonName(Reason::kDomainClaimed));
  EXPECT_EQ(Enabled("vm-0"), 1u);

  options_.claim_is_stale = [](const DomainClaim& claim, const std::string& domain) {
    return claim.owner == "default/gone" && domain == "vm-0";
  };
  Result r = Pass(b_);
  EXPECT_EQ(Enabled("vm-0"), 6u);
  EXPECT_EQ(hv_.Peek("vm-0")->claim->owner, "default/b");
  bool told = false;
  for (const auto& e : r.events) told |= e.message.find("from default/gone") != std::string::npos;
  EXPECT_TRUE(told);
}

TEST_F(ClaimTest, TheClaimRecordsTheManagerAndTheMessageNamesIt) {
  options_.claim_manager = "node/node-a";
  Pass(a_);
  EXPECT_EQ(hv_.Peek("vm-0")->claim->manager, "node/node-a");
  options_.claim_manager = "";
  Pass(b_);
  EXPECT_NE(Cond(b_, condition::kReady).message.find("hotplug-operator of node/node-a"),
            std::string::npos)
      << Cond(b_, condition::kReady).message;
}

// Another process claims the domain between this pass's Observe and its own claim.
class RacedHypervisor final : public backends::Hypervisor {
 public:
  explicit RacedHypervisor(backends::fake::FakeHypervisor& inner) : inner_(inner) {}
  backends::Result<backends::DomainObservation> Observe(const std::string& d) override {
    return inner_.Observe(d);
  }
  backends::Status SetVcpu(const std::string& d, unsigned id, bool enable, bool persist) override {
    return inner_.SetVcpu(d, id, enable, persist);
  }
  backends::Status PinVcpu(const std::string& d, unsigned id, const std::vector<unsigned>& cpus,
                           bool persist) override {
    return inner_.PinVcpu(d, id, cpus, persist);
  }
  backends::Status OnlineGuestVcpus(const std::string& d,
                                    const std::vector<unsigned>& ids) override {
    return inner_.OnlineGuestVcpus(d, ids);
  }
  backends::Status ApplyMemoryStep(const std::string& d, const backends::MemoryStep& step,
                                   bool persist) override {
    return inner_.ApplyMemoryStep(d, step, persist);
  }
  backends::Result<DomainClaim> ClaimDomain(const std::string& d, const DomainClaim& claim,
                                            const std::optional<DomainClaim>& replacing) override {
    (void)inner_.ClaimDomain(d, {"default/c", "uid-c", "node/node-b"}, std::nullopt);
    return inner_.ClaimDomain(d, claim, replacing);
  }
  backends::Status ReleaseDomain(const std::string& d, const DomainClaim& claim) override {
    return inner_.ReleaseDomain(d, claim);
  }
  void SetEventSink(DomainEventSink sink) override { inner_.SetEventSink(std::move(sink)); }

 private:
  backends::fake::FakeHypervisor& inner_;
};

TEST_F(ClaimTest, AClaimantThatLostARaceIsToldTheWinnerAndChangesNothing) {
  RacedHypervisor raced(hv_);
  Reconciler reconciler(raced, clock_, options_);
  Result r = reconciler.Reconcile(a_);
  EXPECT_FALSE(r.claim.has_value());
  EXPECT_TRUE(r.steps.empty());
  const crd::Condition* ready = crd::FindCondition(r.status, condition::kReady);
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->reason, ReasonName(Reason::kDomainClaimed));
  EXPECT_NE(ready->message.find("default/c (claimed by the hotplug-operator of node/node-b"),
            std::string::npos)
      << ready->message;
  EXPECT_EQ(hv_.SetVcpuCallCount(), 0u);
}

}  // namespace
}  // namespace hotplug::reconciler

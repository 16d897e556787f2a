// OwnedDomains: which claim each key holds, given back whole when it is to be released.
#include "controller/owned_domains.h"

#include <gtest/gtest.h>

namespace hotplug::controller {
namespace {

TEST(OwnedDomainsTest, AClaimOfItsOwnShapeComesBackWholeWhenTheKeyNamesAnotherDomain) {
  OwnedDomains owned("node/a");
  const backends::DomainClaim claim{"ns/web", "uid-1", "node/a"};
  owned.Record("ns/web", "dom-1", claim, /*claim_known=*/true);
  EXPECT_FALSE(owned.TakeIfNotNaming("ns/web", std::string("dom-1")));  // still its domain
  std::optional<OwnedDomains::Owned> taken = owned.TakeIfNotNaming("ns/web", std::nullopt);
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->domain, "dom-1");
  EXPECT_EQ(taken->claim, claim);
  EXPECT_FALSE(owned.TakeIfNotNaming("ns/web", std::nullopt));  // taken once
}

TEST(OwnedDomainsTest, APassThatFoundNoClaimForgetsOnlyThatDomainsAndAnUnknownOneNothing) {
  OwnedDomains owned("");
  const backends::DomainClaim claim{"ns/web", "uid-1", ""};
  owned.Record("ns/web", "dom-1", claim, true);
  owned.Record("ns/web", "dom-1", claim, /*claim_known=*/false);  // stopped before the claim
  owned.Record("ns/web", "dom-2", std::nullopt, true);             // another domain's pass
  ASSERT_TRUE(owned.TakeIfNotNaming("ns/web", std::nullopt));
  owned.Record("ns/web", "dom-1", claim, true);
  owned.Record("ns/web", "dom-1", std::nullopt, true);  // released, or taken by another
  EXPECT_FALSE(owned.TakeIfNotNaming("ns/web", std::nullopt));
}

}  // namespace
}  // namespace hotplug::controller

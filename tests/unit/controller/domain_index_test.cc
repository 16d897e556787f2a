// The domain index: a hypervisor event about a domain finds exactly the keys that name it,
// through renames, removals and several objects naming one domain.
#include "controller/domain_index.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace hotplug::controller {
namespace {

std::vector<std::string> Sorted(std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end());
  return keys;
}

TEST(DomainIndexTest, FindsEveryKeyNamingADomainAndFollowsChanges) {
  DomainIndex index;
  index.Set("default/a", "web-01");
  index.Set("default/b", "web-01");
  index.Set("default/c", "db-01");
  EXPECT_EQ(Sorted(index.KeysNaming("web-01")),
            (std::vector<std::string>{"default/a", "default/b"}));
  EXPECT_EQ(index.KeysNaming("db-01"), std::vector<std::string>{"default/c"});
  EXPECT_TRUE(index.KeysNaming("nope").empty());

  index.Set("default/b", "db-01");  // spec.domain changed
  EXPECT_EQ(index.KeysNaming("web-01"), std::vector<std::string>{"default/a"});
  EXPECT_EQ(Sorted(index.KeysNaming("db-01")),
            (std::vector<std::string>{"default/b", "default/c"}));

  index.Set("default/a", std::nullopt);  // deleted
  EXPECT_TRUE(index.KeysNaming("web-01").empty());
  index.Set("default/a", std::nullopt);  // deleted twice: nothing to do
  index.Set("default/c", "db-01");       // unchanged: still once
  EXPECT_EQ(index.KeysNaming("db-01").size(), 2u);
}

}  // namespace
}  // namespace hotplug::controller

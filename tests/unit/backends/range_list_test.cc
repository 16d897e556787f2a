// Id lists "0-2,5": formatted sorted and folded into runs, parsed strictly (table-driven).
#include "backends/range_list.h"

#include <gtest/gtest.h>

namespace hotplug::backends {
namespace {

TEST(RangeListTest, FormatsSortedRunsEachIdOnce) {
  EXPECT_EQ(FormatRangeList({}), "");
  EXPECT_EQ(FormatRangeList({5}), "5");
  EXPECT_EQ(FormatRangeList({3, 0, 1, 2, 5, 5}), "0-3,5");
  EXPECT_EQ(FormatRangeList({7, 9, 8, 1}), "1,7-9");
}

TEST(RangeListTest, ParsesWhatItFormatsAndCommaLists) {
  const std::pair<const char*, std::vector<unsigned>> cases[] = {
      {"", {}},
      {"4", {4}},
      {"0-2,5", {0, 1, 2, 5}},
      {"2,3", {2, 3}},
      {"5,1", {5, 1}},
      {"0-4095",
       [] {
         std::vector<unsigned> all;
         for (unsigned i = 0; i < 4096; ++i) all.push_back(i);
         return all;
       }()},
      {"4294967295", {4294967295u}},
  };
  for (const auto& [text, ids] : cases) {
    auto parsed = ParseRangeList(text);
    ASSERT_TRUE(parsed) << text;
    EXPECT_EQ(*parsed, ids) << text;
  }
}

TEST(RangeListTest, RefusesWhatIsNotAList) {
  for (const char* text : {",", "1,", ",1", "a", "1-", "-1", "3-1", "1--2", "1 ,2", "0x1",
                           "4294967296", "0-4096", "1-2-3", "+1"}) {
    EXPECT_FALSE(ParseRangeList(text)) << text;
  }
}

}  // namespace
}  // namespace hotplug::backends

// The condition reasons' table: every reason named once, in the API's CamelCase, parsed back
// to itself; the hypervisor's error codes keep their names as reasons.
#include "reconciler/reasons.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>

namespace hotplug::reconciler {
namespace {

TEST(ReasonsTest, EveryReasonHasOneStableCamelCaseName) {
  std::set<std::string> names;
  for (const ReasonInfo& info : kReasons) {
    const std::string name = info.name;
    EXPECT_TRUE(names.insert(name).second) << name << " twice";
    ASSERT_FALSE(name.empty());
    EXPECT_TRUE(std::isupper(static_cast<unsigned char>(name[0]))) << name;
    for (char c : name) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << name;
    EXPECT_EQ(ParseReason(name), info.reason) << name;
  }
  EXPECT_EQ(ParseReason("SomethingHandWritten"), std::nullopt);
  EXPECT_EQ(ParseReason(""), std::nullopt);
}

TEST(ReasonsTest, ErrorCodesKeepTheirNamesAsReasons) {
  for (int code = static_cast<int>(backends::ErrorCode::kDomainNotFound);
       code <= static_cast<int>(backends::ErrorCode::kInternal); ++code) {
    const auto error = static_cast<backends::ErrorCode>(code);
    EXPECT_STREQ(ReasonName(ReasonForError(error)), backends::ErrorCodeName(error));
  }
}

TEST(ReasonsTest, OnlyWorkUnderWayAndSuccessAreNotFailures) {
  std::set<Reason> not_failures;
  for (const ReasonInfo& info : kReasons) {
    if (!info.failure) not_failures.insert(info.reason);
  }
  EXPECT_EQ(not_failures,
            (std::set<Reason>{Reason::kSynced, Reason::kNotManaged, Reason::kInProgress,
                              Reason::kUnplugPending, Reason::kRecommending,
                              Reason::kAutoscaling}));
  // Errors are retried with backoff; a spec the host cannot honour waits for a change.
  EXPECT_EQ(InfoOf(Reason::kPartialFailure).requeue, Requeue::kBackoff);
  EXPECT_EQ(InfoOf(Reason::kHypervisorUnavailable).requeue, Requeue::kBackoff);
  EXPECT_EQ(InfoOf(Reason::kExceedsMaximum).requeue, Requeue::kNone);
  EXPECT_EQ(InfoOf(Reason::kDomainNotFound).requeue, Requeue::kBlocked);
}

}  // namespace
}  // namespace hotplug::reconciler

// Quantities parse and format as k8s.io/apimachinery's resource.Quantity does.
#include "crd/quantity.h"

#include <gtest/gtest.h>

namespace hotplug::crd {
namespace {

struct RoundTrip {
  const char* input;
  const char* canonical;
  int64_t value;
};

TEST(QuantityTest, ParsesAndCanonicalisesLikeKubernetes) {
  const RoundTrip cases[] = {
      {"0", "0", 0},
      {"1", "1", 1},
      {"2Gi", "2Gi", 2LL << 30},
      {"1536Mi", "1536Mi", 1536LL << 20},
      {"1.5Gi", "1536Mi", 1536LL << 20},
      {"0.5Ki", "512", 512},
      {"1024", "1024", 1024},
      {"1Ki", "1Ki", 1024},
      {"1000", "1k", 1000},
      {"1500", "1500", 1500},
      {"1.5", "1500m", 2},
      {"500m", "500m", 1},
      {"1k", "1k", 1000},
      {"2M", "2M", 2000000},
      {"1e3", "1e3", 1000},
      {"1E6", "1e6", 1000000},
      {"1.5e3", "1500", 1500},
      {"+3", "3", 3},
      {"-2", "-2", -2},
      {".5", "500m", 1},
      {"1.", "1", 1},
      {"100n", "100n", 1},
      {"1u", "1u", 1},
      {"1Ei", "1Ei", 1LL << 60},
      {"8E", "8E", 8000000000000000000LL},
      {"0.000000001", "1n", 1},
      {"0.0000000001", "1n", 1},  // below nano precision: rounds up, as Kubernetes does
      {"1e-3", "1e-3", 1},
  };
  for (const auto& c : cases) {
    std::string error;
    auto q = Quantity::Parse(c.input, &error);
    ASSERT_TRUE(q.has_value()) << c.input << ": " << error;
    EXPECT_EQ(q->ToString(), c.canonical) << c.input;
    EXPECT_EQ(q->Value(), c.value) << c.input;
  }
}

TEST(QuantityTest, RejectsMalformedInputWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty"},
      {"Gi", "number"},
      {"two", "number"},
      {"1GB", "suffix"},
      {"1 Gi", "suffix"},
      {"1K", "suffix"},
      {"1e", "suffix"},
      {"1e+", "digits"},
      {"1..2", "suffix"},
      {"--1", "number"},
      {"1e99999", "range"},
      {"9223372036854775808", "too large"},
      {"16Ei", "too large"},
      {"99999999999999999999999999999999", "too large"},
  };
  for (const auto& [input, why] : cases) {
    std::string error;
    EXPECT_FALSE(Quantity::Parse(input, &error).has_value()) << input;
    EXPECT_NE(error.find(why), std::string::npos) << input << " -> " << error;
  }
}

TEST(QuantityTest, RefusesMegabyteInputWithoutWork) {
  std::string huge(1 << 20, '9');
  std::string error;
  EXPECT_FALSE(Quantity::Parse(huge, &error).has_value());
  EXPECT_NE(error.find("longer"), std::string::npos);
}

TEST(QuantityTest, FormatBytesPrefersTheLargestExactBinarySuffix) {
  EXPECT_EQ(FormatBytes(2ull << 30), "2Gi");
  EXPECT_EQ(FormatBytes(1536ull << 20), "1536Mi");
  EXPECT_EQ(FormatBytes(100), "100");
  EXPECT_EQ(FormatBytes(0), "0");
}

TEST(QuantityTest, ComparesByAmountNotText) {
  EXPECT_EQ(*Quantity::Parse("1Gi"), *Quantity::Parse("1024Mi"));
  EXPECT_LT(*Quantity::Parse("1G"), *Quantity::Parse("1Gi"));
}

}  // namespace
}  // namespace hotplug::crd

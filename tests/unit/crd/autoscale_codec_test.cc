// spec.cpu.autoscale and spec.memory.autoscale: decoded with their defaults, round-tripped,
// and bad input is an InvalidSpec naming the field and the value.
#include <gtest/gtest.h>

#include "crd/autoscale.h"
#include "crd/codec.h"

namespace hotplug::crd {
namespace {

std::string Doc(const std::string& spec) {
  return "apiVersion: hotplug.dev/v1alpha1\nkind: ElasticVM\nmetadata: {name: vm}\nspec: " + spec +
         "\n";
}

ElasticVM DecodeOne(const std::string& spec) {
  auto results = DecodeYamlText(Doc(spec));
  EXPECT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok()) << results[0].error;
  return results[0].ok() ? *results[0].object : ElasticVM{};
}

TEST(AutoscaleCodecTest, CpuAutoscaleTakesTheHpaDefaults) {
  ElasticVM vm = DecodeOne("{cpu: {autoscale: {maxVcpus: 4, targetUtilization: 60}}}");
  ASSERT_FALSE(vm.spec_error) << *vm.spec_error;
  ASSERT_TRUE(vm.spec.cpu.autoscale);
  const CpuAutoscale& a = *vm.spec.cpu.autoscale;
  EXPECT_EQ(a.mode, AutoscaleMode::kRecommend);
  EXPECT_EQ(a.min_vcpus, 1);
  EXPECT_EQ(a.max_vcpus, 4);
  EXPECT_EQ(a.target_utilization, 60);
  EXPECT_EQ(a.scale_up.stabilization_window, std::chrono::seconds(30));
  EXPECT_EQ(a.scale_down.stabilization_window, std::chrono::minutes(5));
  EXPECT_FALSE(vm.spec.cpu.vcpus);
}

TEST(AutoscaleCodecTest, EveryFieldDecodesAndRoundTrips) {
  ElasticVM vm = DecodeOne(
      "{cpu: {vcpus: 2, autoscale: {mode: Auto, minVcpus: 2, maxVcpus: 8, targetUtilization: 70,"
      " scaleUp: {stabilizationWindow: 5s, maxStep: 2}, scaleDown: {stabilizationWindow: 1m30s,"
      " maxStep: 3}}}, memory: {size: 1Gi, autoscale: {mode: Auto, min: 1Gi, max: 4Gi,"
      " targetAvailable: '25%', allowShrink: true, scaleDown: {stabilizationWindow: 10m}}}}");
  ASSERT_FALSE(vm.spec_error) << *vm.spec_error;
  const CpuAutoscale& a = *vm.spec.cpu.autoscale;
  EXPECT_EQ(a.mode, AutoscaleMode::kAuto);
  EXPECT_EQ(a.min_vcpus, 2);
  EXPECT_EQ(a.scale_up.stabilization_window, std::chrono::seconds(5));
  EXPECT_EQ(a.scale_up.max_step, 2);
  EXPECT_EQ(a.scale_down.stabilization_window, std::chrono::seconds(90));
  EXPECT_EQ(a.scale_down.max_step, 3);
  const MemoryAutoscale& m = *vm.spec.memory.autoscale;
  EXPECT_EQ(m.max->Value(), 4LL << 30);
  EXPECT_EQ(m.target_available.percent, 25);
  EXPECT_TRUE(m.allow_shrink);
  EXPECT_EQ(m.scale_down.stabilization_window, std::chrono::minutes(10));

  VcpuStatus vcpus;
  vcpus.desired = vcpus.current = 2;
  vcpus.maximum = 8;
  vcpus.enabled = "0-1";
  vcpus.recommended = 3;
  vcpus.utilization = 85;
  vm.status.vcpus = vcpus;
  DecodeResult again = DecodeJsonText(EncodeJsonText(vm));
  ASSERT_TRUE(again.ok()) << again.error;
  ASSERT_FALSE(again.object->spec_error) << *again.object->spec_error;
  EXPECT_EQ(*again.object->spec.cpu.autoscale, a);
  EXPECT_EQ(again.object->spec.memory.autoscale->target_available.percent, 25);
  EXPECT_EQ(again.object->status.vcpus->recommended, 3);
  EXPECT_EQ(again.object->status.vcpus->utilization, 85);
}

TEST(AutoscaleCodecTest, TargetAvailableIsAPercentageOrAQuantity) {
  ElasticVM vm =
      DecodeOne("{memory: {autoscale: {min: 1Gi, max: 2Gi, targetAvailable: 512Mi}}}");
  ASSERT_FALSE(vm.spec_error) << *vm.spec_error;
  EXPECT_FALSE(vm.spec.memory.autoscale->target_available.percent);
  EXPECT_EQ(vm.spec.memory.autoscale->target_available.amount->Value(), 512LL << 20);
}

TEST(AutoscaleCodecTest, BadAutoscaleSpecsNameTheFieldAndTheValue) {
  const struct {
    const char* spec;
    const char* error;
  } cases[] = {
      {"{cpu: {autoscale: {targetUtilization: 60}}}",
       "spec.cpu.autoscale.maxVcpus: expected an integer from 1 to 4096, got null"},
      {"{cpu: {autoscale: {maxVcpus: 4}}}",
       "spec.cpu.autoscale.targetUtilization: expected an integer from 1 to 100, got null"},
      {"{cpu: {autoscale: {maxVcpus: 4, targetUtilization: 0}}}",
       "spec.cpu.autoscale.targetUtilization: expected an integer from 1 to 100, got 0"},
      {"{cpu: {autoscale: {maxVcpus: 4, targetUtilization: 101}}}",
       "spec.cpu.autoscale.targetUtilization: expected an integer from 1 to 100, got 101"},
      {"{cpu: {autoscale: {minVcpus: 5, maxVcpus: 4, targetUtilization: 60}}}",
       "spec.cpu.autoscale.minVcpus: expected at most maxVcpus (4), got 5"},
      {"{cpu: {autoscale: {maxVcpus: 4, targetUtilization: 60, mode: auto}}}",
       "spec.cpu.autoscale.mode: expected one of Recommend, Auto, got \"auto\""},
      {"{cpu: {autoscale: {maxVcpus: 4, targetUtilization: 60, scaleUp: {stabilizationWindow: "
       "30}}}}",
       "spec.cpu.autoscale.scaleUp.stabilizationWindow: expected a duration such as 30s or 5m, "
       "at most 24h, got 30"},
      {"{cpu: {autoscale: {maxVcpus: 4, targetUtilization: 60, scaleDown: {stabilizationWindow: "
       "25h}}}}",
       "spec.cpu.autoscale.scaleDown.stabilizationWindow: expected a duration such as 30s or 5m, "
       "at most 24h, got \"25h\""},
      {"{cpu: {autoscale: {maxVcpus: 4, targetUtilization: 60, scaleUp: {maxStep: 0}}}}",
       "spec.cpu.autoscale.scaleUp.maxStep: expected an integer from 1 to 4096, got 0"},
      {"{cpu: {autoscale: [1]}}", "spec.cpu.autoscale: expected an object, got [1]"},
      {"{memory: {autoscale: {max: 2Gi, targetAvailable: '20%'}}}",
       "spec.memory.autoscale.min: expected a quantity such as 2Gi, got null"},
      {"{memory: {autoscale: {min: 2Gi, max: 1Gi, targetAvailable: '20%'}}}",
       "spec.memory.autoscale.min: expected at most max (1Gi), got \"2Gi\""},
      {"{memory: {autoscale: {min: 1Gi, max: 2Gi, targetAvailable: '100%'}}}",
       "spec.memory.autoscale.targetAvailable: expected a percentage from 1% to 99% or a "
       "quantity, got \"100%\""},
      {"{memory: {autoscale: {min: -1Gi, max: 2Gi, targetAvailable: '20%'}}}",
       "spec.memory.autoscale.min: expected a positive whole number of bytes, got \"-1Gi\""},
  };
  for (const auto& c : cases) {
    auto results = DecodeYamlText(Doc(c.spec));
    ASSERT_EQ(results.size(), 1u) << c.spec;
    ASSERT_TRUE(results[0].ok()) << c.spec << ": " << results[0].error;
    ASSERT_TRUE(results[0].object->spec_error) << c.spec;
    EXPECT_EQ(*results[0].object->spec_error, c.error) << c.spec;
  }
}

TEST(AutoscaleCodecTest, DurationsParseAndFormatAsGoSpellsThem) {
  EXPECT_EQ(ParseDuration("1h2m3s"), std::chrono::milliseconds(3'723'000));
  EXPECT_EQ(ParseDuration("500ms"), std::chrono::milliseconds(500));
  EXPECT_EQ(ParseDuration("0"), std::chrono::milliseconds(0));
  EXPECT_EQ(ParseDuration("24h"), std::chrono::hours(24));
  for (const char* bad : {"", "s", "5", "5x", "-5s", "1.5s", "24h1s", "99999999999999999999s"}) {
    EXPECT_FALSE(ParseDuration(bad)) << bad;
  }
  EXPECT_EQ(FormatDuration(std::chrono::seconds(90)), "1m30s");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(1500)), "1500ms");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(0)), "0s");
}

}  // namespace
}  // namespace hotplug::crd

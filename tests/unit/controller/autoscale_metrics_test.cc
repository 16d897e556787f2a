// The autoscale gauges: one series set per autoscaled object (the one per-object label,
// docs/metrics.md), gone with the object; decisions counted by direction.
#include <gtest/gtest.h>

#include "controller/metrics.h"
#include "tests/support/objects.h"

namespace hotplug::controller {
namespace {

reconciler::AutoscaleDecisionRecord Decision(const char* direction, double recommended) {
  return {"default/web-01", "vcpu", recommended, recommended, 2, 4, 95, 60, direction};
}

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(AutoscaleMetricsTest, AnAutoscaledObjectHasItsGaugesUntilItGoes) {
  reconciler::FakeClock clock;
  PrometheusMetrics metrics("test", clock);
  crd::ElasticVM object = testing::MakeElasticVM("web-01", std::nullopt);
  object.spec.cpu.autoscale = crd::CpuAutoscale{};
  metrics.ObjectChanged(object.Key(), &object);
  metrics.AutoscaleDecision(Decision("up", 4));
  metrics.AutoscaleDecision(Decision("none", 4));
  std::string text = metrics.Scrape();
  EXPECT_TRUE(Has(text, "hotplug_autoscale_recommended{elasticvm=\"default/web-01\",resource=\"vcpu\"} 4"))
      << text;
  EXPECT_TRUE(Has(text, "hotplug_autoscale_current{elasticvm=\"default/web-01\",resource=\"vcpu\"} 2"));
  EXPECT_TRUE(Has(text, "hotplug_autoscale_maximum{elasticvm=\"default/web-01\",resource=\"vcpu\"} 4"));
  EXPECT_TRUE(Has(text, "hotplug_autoscale_utilization_percent{elasticvm=\"default/web-01\",resource=\"vcpu\"} 95"));
  EXPECT_TRUE(Has(text, "hotplug_autoscale_target_percent{elasticvm=\"default/web-01\",resource=\"vcpu\"} 60"));
  EXPECT_TRUE(Has(text, "hotplug_autoscale_decisions_total{direction=\"up\",resource=\"vcpu\"} 1"));
  EXPECT_TRUE(Has(text, "hotplug_autoscale_decisions_total{direction=\"none\",resource=\"vcpu\"} 1"));

  // Autoscale removed from the spec: the series go; so they do when the object is deleted.
  object.spec.cpu.autoscale.reset();
  metrics.ObjectChanged(object.Key(), &object);
  EXPECT_FALSE(Has(metrics.Scrape(), "elasticvm=\"default/web-01\""));
  metrics.AutoscaleDecision(Decision("down", 1));
  EXPECT_TRUE(Has(metrics.Scrape(), "elasticvm=\"default/web-01\""));
  metrics.ObjectChanged(object.Key(), nullptr);
  EXPECT_FALSE(Has(metrics.Scrape(), "elasticvm=\"default/web-01\""));
}

}  // namespace
}  // namespace hotplug::controller

// The autoscale gauges: one series set per autoscaled object (the one per-object label,
// docs/metrics.md), gone with the object; decisions counted by direction.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "backends/fake/fake_hypervisor.h"
#include "controller/metrics.h"
#include "tests/support/fake_event_recorder.h"
#include "tests/support/fake_object_source.h"
#include "tests/support/fake_status_writer.h"
#include "tests/support/objects.h"
#include "tests/support/poll.h"
#include "tests/support/test_operator.h"

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

  // The watch's news of a removal leaves them (a pass may still be deciding); the worker's
  // AutoscaleForgotten after the last pass drops them.
  object.spec.cpu.autoscale.reset();
  metrics.ObjectChanged(object.Key(), &object);
  EXPECT_TRUE(Has(metrics.Scrape(), "elasticvm=\"default/web-01\""));
  metrics.AutoscaleForgotten(object.Key());
  EXPECT_FALSE(Has(metrics.Scrape(), "elasticvm=\"default/web-01\""));
  metrics.AutoscaleDecision(Decision("down", 1));
  EXPECT_TRUE(Has(metrics.Scrape(), "elasticvm=\"default/web-01\""));
  metrics.ObjectChanged(object.Key(), nullptr);
  metrics.AutoscaleForgotten(object.Key());
  EXPECT_FALSE(Has(metrics.Scrape(), "elasticvm=\"default/web-01\""));
}

// Review of issue 15, item 5: the series of a deleted object were forgotten on the watch's
// thread while a pass of it was still sampling; that pass then made them again, for good.
// Here the object is deleted while its pass waits in ReadLoad.
TEST(AutoscaleMetricsTest, AnObjectDeletedDuringItsPassLeavesNoSeries) {
  using namespace std::chrono_literals;
  reconciler::SystemClock clock;
  PrometheusMetrics metrics("test", clock);
  testing::FakeObjectSource source;
  MeteredSource metered(source, metrics);
  testing::FakeStatusWriter writer(source);
  testing::FakeEventRecorder events;
  backends::fake::FakeHypervisor fake;
  backends::fake::DomainSpec domain;
  domain.name = "vm-0";
  fake.AddDomain(domain);
  fake.SetLoad("vm-0", 4.0);
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false, held = false, open = false;
  fake.SetLoadClock([&] {  // called only by ReadLoad once armed
    std::unique_lock lock(mu);
    if (armed && !open) {
      held = true;
      cv.notify_all();
      cv.wait_for(lock, 10s, [&] { return open; });
    }
    return std::chrono::steady_clock::now();
  });
  Controller::Options options = testing::FastOptions();
  options.metrics = &metrics;
  options.autoscale = {20ms, 100ms, 8};
  testing::TestOperator op(metered, writer, events, fake, options);
  crd::ElasticVM vm = testing::MakeElasticVM("web-01", std::nullopt, "vm-0");
  crd::CpuAutoscale autoscale;
  autoscale.max_vcpus = 4;
  autoscale.target_utilization = 60;
  vm.spec.cpu.autoscale = autoscale;
  source.Put(vm);
  const std::string series = "elasticvm=\"default/web-01\"";
  ASSERT_TRUE(testing::PollUntil([&] { return Has(metrics.Scrape(), series); }, 5s, 2ms));
  {
    std::unique_lock lock(mu);
    armed = true;
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return held; }));
  }
  source.Delete(vm.Key());
  {
    std::lock_guard lock(mu);
    open = true;
  }
  cv.notify_all();
  EXPECT_TRUE(testing::PollUntil([&] { return !Has(metrics.Scrape(), series); }, 5s, 2ms))
      << metrics.Scrape();
}

}  // namespace
}  // namespace hotplug::controller

#include "controller/autoscale_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace hotplug::controller {
namespace {

template <typename Metric>
prometheus::Family<Metric>* Register(prometheus::Registry& registry, const std::string& name,
                                     const std::string& help) {
  return &prometheus::detail::Builder<Metric>().Name(name).Help(help).Register(registry);
}

using GaugeFamily = prometheus::Family<prometheus::Gauge>;

}  // namespace

AutoscaleMetrics::AutoscaleMetrics(prometheus::Registry& registry) {
  const std::string unit = " (vCPUs, or bytes for resource=memory).";
  const std::pair<GaugeFamily**, std::pair<const char*, std::string>> gauges[] = {
      {&recommended_, {"hotplug_autoscale_recommended",
                       "What spec.*.autoscale recommends, per autoscaled ElasticVM" + unit}},
      {&desired_, {"hotplug_autoscale_desired",
                   "What the pass reconciles to: the recommendation under mode Auto, the spec "
                   "under Recommend" + unit}},
      {&current_, {"hotplug_autoscale_current", "What the guest has now" + unit}},
      {&maximum_, {"hotplug_autoscale_maximum",
                   "The most autoscale may recommend: maxVcpus capped by the domain's maximum, "
                   "or memory max" + unit}},
      {&utilization_, {"hotplug_autoscale_utilization_percent",
                       "The load behind the last decision: vCPU utilisation, or available "
                       "memory (memory)."}},
      {&target_, {"hotplug_autoscale_target_percent",
                  "targetUtilization, or targetAvailable when it is a percentage (memory)."}},
  };
  for (const auto& [family, text] : gauges) {
    *family = Register<prometheus::Gauge>(registry, text.first, text.second);
  }
  decisions_ = Register<prometheus::Counter>(
      registry, "hotplug_autoscale_decisions_total",
      "Autoscale decisions (one per load sample), by resource and direction (up|down|none).");
}

void AutoscaleMetrics::Record(const reconciler::AutoscaleDecisionRecord& record) {
  const std::string resource = record.resource == "memory" ? "memory" : "vcpu";
  const std::string direction = record.direction == "up" || record.direction == "down"
                                    ? std::string(record.direction)
                                    : "none";
  decisions_->Add({{"resource", resource}, {"direction", direction}}).Increment();
  MutexLock lock(mu_);
  const std::pair<std::string, std::string> id{std::string(record.key), resource};
  auto it = series_.find(id);
  if (it == series_.end()) {
    const prometheus::Labels labels = {{"elasticvm", id.first}, {"resource", resource}};
    Series s{&recommended_->Add(labels), &desired_->Add(labels),     &current_->Add(labels),
             &maximum_->Add(labels),     &utilization_->Add(labels), &target_->Add(labels)};
    it = series_.emplace(id, s).first;
  }
  const Series& s = it->second;
  s.recommended->Set(record.recommended);
  s.desired->Set(record.desired);
  s.current->Set(record.current);
  s.maximum->Set(record.maximum);
  s.utilization->Set(record.signal_percent);
  s.target->Set(record.target_percent);
}

void AutoscaleMetrics::Forget(const std::string& key) {
  MutexLock lock(mu_);
  for (auto it = series_.lower_bound({key, ""}); it != series_.end() && it->first.first == key;) {
    const Series& s = it->second;
    recommended_->Remove(s.recommended);
    desired_->Remove(s.desired);
    current_->Remove(s.current);
    maximum_->Remove(s.maximum);
    utilization_->Remove(s.utilization);
    target_->Remove(s.target);
    it = series_.erase(it);
  }
}

}  // namespace hotplug::controller

#include "reconciler/pinning.h"

#include <algorithm>

#include "backends/range_list.h"

namespace hotplug::reconciler {

using backends::DomainObservation;
using backends::FormatRangeList;
using backends::VcpuInfo;

namespace {

std::string Pins(const DomainObservation& domain) {
  std::string text;
  for (const VcpuInfo& v : domain.vcpus) {
    if (!v.enabled || v.pin.empty()) continue;
    text += (text.empty() ? "" : ", ") + std::string("vCPU ") + std::to_string(v.id) + " to " +
            FormatRangeList(v.pin);
  }
  return text;
}

// One host CPU per vCPU from `cpus`, each time the one the fewest enabled vCPUs are pinned
// to (counting the ones dealt here), the lowest on a tie.
void Deal(const DomainObservation& domain, const std::vector<unsigned>& cpus,
          const std::vector<unsigned>& plug, PinPlan& plan) {
  std::map<unsigned, unsigned> load;
  for (unsigned cpu : cpus) load[cpu] = 0;
  for (const VcpuInfo& v : domain.vcpus) {
    if (!v.enabled) continue;
    for (unsigned cpu : v.pin) {
      if (load.count(cpu)) load[cpu]++;
    }
  }
  for (unsigned id : plug) {
    auto least = std::min_element(load.begin(), load.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second < b.second : a.first < b.first;
    });
    plan.pins[id] = {least->first};
    least->second++;
  }
}

}  // namespace

bool DomainPinsVcpus(const DomainObservation& domain) {
  return std::any_of(domain.vcpus.begin(), domain.vcpus.end(),
                     [](const VcpuInfo& v) { return v.enabled && !v.pin.empty(); });
}

PinPlan PlanPins(const DomainObservation& domain, const std::optional<crd::PinningSpec>& pinning,
                 const std::vector<unsigned>& plug) {
  PinPlan plan;
  if (plug.empty()) return plan;
  if (pinning && pinning->policy == crd::PinningPolicy::kDealt) {
    const std::vector<unsigned> cpus =
        backends::ParseRangeList(pinning->host_cpus).value_or(std::vector<unsigned>{});
    for (unsigned cpu : cpus) {
      if (domain.host_cpus != 0 && cpu >= domain.host_cpus) {
        plan.blocked = {Reason::kPinningUnavailable,
                        "spec.cpu.pinning.hostCPUs names host CPU " + std::to_string(cpu) +
                            " but this host has CPUs 0-" + std::to_string(domain.host_cpus - 1)};
        return plan;
      }
    }
    Deal(domain, cpus, plug, plan);
    return plan;
  }
  if (!pinning && !DomainPinsVcpus(domain)) return plan;
  for (unsigned id : plug) {
    // Without a spec, a pin an administrator gave the slot in advance is kept.
    if (!pinning && !domain.vcpus[id].pin.empty()) continue;
    if (domain.default_cpuset.empty()) {
      plan.pins.clear();
      plan.blocked = {
          Reason::kPinningUnavailable,
          pinning ? "spec.cpu.pinning.policy is domain but domain " + domain.name +
                        " has no <vcpu cpuset> to pin new vCPUs to; give it one, or deal host "
                        "CPUs with spec.cpu.pinning.hostCPUs"
                  : "domain " + domain.name + " pins its vCPUs (" + Pins(domain) +
                        ") and a plugged vCPU must not run unpinned among them, but nothing says "
                        "where to pin vCPU " +
                        std::to_string(id) +
                        ": set spec.cpu.pinning.hostCPUs (one host CPU is dealt to each plugged "
                        "vCPU), or give the domain a <vcpu cpuset>"};
      return plan;
    }
    plan.pins[id] = domain.default_cpuset;
  }
  return plan;
}

std::map<int64_t, std::string> PinsOfEnabled(const DomainObservation& domain) {
  std::map<int64_t, std::string> pins;
  if (!DomainPinsVcpus(domain) && domain.default_cpuset.empty()) return pins;
  for (const VcpuInfo& v : domain.vcpus) {
    if (!v.enabled) continue;
    const std::vector<unsigned>& cpus = v.pin.empty() ? domain.default_cpuset : v.pin;
    pins[v.id] = cpus.empty() ? "any" : FormatRangeList(cpus);
  }
  return pins;
}

}  // namespace hotplug::reconciler

// Pinning (issue 16, item 3): what each vCPU a pass plugs is pinned to, before it is plugged,
// so that it never runs guest work unpinned among pinned vCPUs. From spec.cpu.pinning: dealt
// (one host CPU per vCPU from hostCPUs, the least used first) or domain (the domain's <vcpu
// cpuset>); without it, a domain that pins its vCPUs gets its <vcpu cpuset> for new ones, and
// is refused when it has none. Pure.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include "backends/hypervisor.h"
#include "crd/elasticvm.h"
#include "reconciler/planner.h"

namespace hotplug::reconciler {

struct PinPlan {
  std::optional<Verdict> blocked;                  // set: no vCPU may be plugged
  std::map<unsigned, std::vector<unsigned>> pins;  // by vCPU id: host CPUs; absent: no pin
};

// True when some enabled vCPU has a pin of its own (<cputune><vcpupin>).
bool DomainPinsVcpus(const backends::DomainObservation& domain);

// The pins of the vCPUs in `plug`, in that order.
PinPlan PlanPins(const backends::DomainObservation& domain,
                 const std::optional<crd::PinningSpec>& pinning, const std::vector<unsigned>& plug);

// Each enabled vCPU's affinity as status.vcpus.pins shows it: its own pin, else the domain's
// <vcpu cpuset>; empty when the domain pins nothing.
std::map<int64_t, std::string> PinsOfEnabled(const backends::DomainObservation& domain);

}  // namespace hotplug::reconciler

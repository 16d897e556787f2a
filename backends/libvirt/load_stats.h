// The guest's load from libvirt: per-vCPU time from the bulk stats' vCPU group
// (virDomainListGetStats with VIR_DOMAIN_STATS_VCPU) and the balloon driver's statistics
// (virDomainMemoryStats), turning the stats period on when it is 0.
#pragma once

#include <libvirt/libvirt.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backends/hypervisor.h"

namespace hotplug::backends::libvirt {

// How often the balloon driver refreshes its statistics once the operator turns them on.
inline constexpr int kMemoryStatsPeriodSeconds = 2;

// The vCPUs of the bulk stats' "vcpu.<n>.state/time/delay/wait" keys: those running
// (state 1), by id; their wait is "delay" (run-queue time), else "wait". Pure, for tests:
// `params` are (key, value) pairs.
std::vector<VcpuTime> ParseVcpuStats(const std::vector<std::pair<std::string, uint64_t>>& params);

// virDomainMemoryStats' (tag, kB) pairs as bytes. nullopt when neither "available" nor
// "usable" is there (the stats period is 0 or the guest has no balloon driver).
std::optional<MemoryLoad> ParseMemoryStats(const std::vector<std::pair<int, uint64_t>>& stats);

// One sample of `domain` (named `name` in errors).
Result<LoadSample> ReadDomainLoad(virDomainPtr domain, const std::string& name);

}  // namespace hotplug::backends::libvirt

// QEMU's own list of vCPUs, read through the monitor ("query-cpus-fast"), for when libvirt's
// view is stale: under TCG a timed-out unplug leaves libvirt saying "enabled" although QEMU
// removed the CPU.
#pragma once

#include <set>
#include <string_view>

#include "backends/hypervisor.h"

namespace hotplug::backends::libvirt {

inline constexpr const char* kQueryCpusFast = R"({"execute":"query-cpus-fast"})";

// The "cpu-index" of every CPU in a query-cpus-fast reply. QEMU's cpu-index is libvirt's
// vCPU id. An error reply, or a reply that is not JSON of that shape, is kInternal.
Result<std::set<unsigned>> ParseQueryCpusFast(std::string_view reply);

}  // namespace hotplug::backends::libvirt

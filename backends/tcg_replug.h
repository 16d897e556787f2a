// The TCG re-plug rule, in one place (design §4, measured on this kind of machine): under TCG
// (software emulation), once a vCPU was unplugged in a QEMU process, plugging a vCPU crashed
// that QEMU (7.2: heap corruption on the next plug of any vCPU, even a never-used slot; 10.0:
// the tcg_register_thread assertion when the same vCPU is plugged again), and QEMU 7.2 died
// on the next DIMM change. It lasts as long as the QEMU process: a restart of the domain ends
// it. The backends report the facts (DomainObservation::tcg, VcpuInfo::present_in_qemu,
// DomainObservation::unplugged_vcpus); these pure functions decide, for the planner and for
// both backends' guards.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "backends/hypervisor.h"

namespace hotplug::backends {

// True when plugging vCPU `id` cannot crash QEMU. `unplugged` are the vCPUs unplugged in
// this QEMU process; `present_in_qemu` whether QEMU has vCPU `id` now (nullopt: unknown).
bool VcpuPlugIsSafe(bool tcg, const std::set<unsigned>& unplugged, unsigned id,
                    std::optional<bool> present_in_qemu);
bool VcpuPlugIsSafe(const DomainObservation& domain, const VcpuInfo& vcpu);

// True when attaching or detaching a DIMM cannot crash QEMU.
bool DimmChangeIsSafe(bool tcg, const std::set<unsigned>& unplugged);

// What a backend answers instead of making an unsafe call: kUnsupported, saying why.
Status RefuseVcpuPlug(const std::string& domain, unsigned id, const std::set<unsigned>& unplugged);
Status RefuseDimmChange(const std::string& domain, MemoryStep::Op op,
                        const std::set<unsigned>& unplugged);

}  // namespace hotplug::backends

// Reads what the reconciler needs out of a libvirt domain XML (live or inactive): the
// hypervisor type, vCPU slots, topology, pinning, memory and memory devices, agent channel.
// Pure functions of the XML text, so they are tested without a daemon.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/hypervisor.h"

namespace hotplug::backends::libvirt {

struct ParsedDomainXml {
  std::string domain_type;  // <domain type='...'>: "qemu" (TCG), "kvm", ...
  bool tcg = false;
  unsigned maximum_vcpus = 0;  // <vcpu>N</vcpu>
  unsigned current_vcpus = 0;  // <vcpu current='...'>, or the maximum when not given
  // The <vcpus> map, one entry per slot, or empty when the XML has none (libvirt writes it
  // only after the first hotplug).
  std::vector<VcpuInfo> vcpus;
  Topology topology;
  std::vector<NumaCell> numa_cells;
  bool has_pinning = false;
  std::map<unsigned, std::vector<unsigned>> pins;  // <cputune><vcpupin vcpu cpuset>
  std::vector<unsigned> default_cpuset;            // <vcpu cpuset>
  MemoryInfo memory;
  bool has_agent_channel = false;  // an org.qemu.guest_agent.0 channel is defined
  std::string guest_os;            // <metadata><libosinfo:libosinfo><libosinfo:os id>
};

// More vCPU slots than any QEMU machine has (x86 tops out at 8192 in QEMU 7.2); a larger
// <vcpu> is refused rather than allocated for.
inline constexpr unsigned kMaxVcpusInXml = 16384;

// An error when the text is not XML or its <vcpu> is beyond kMaxVcpusInXml; absent or
// unreadable numbers elsewhere read as 0 (or their documented default).
Result<ParsedDomainXml> ParseDomainXml(std::string_view xml);

// A libvirt cpuset ("0-3,^2,6": ranges, and ^ for exclusions); nullopt when it is not one.
std::optional<std::vector<unsigned>> ParseCpuset(std::string_view text);

// The <vcpus> map libvirt implies when it does not write one (no vCPU was hot-plugged yet):
// slots 0..current-1 enabled and, started with the domain, not hotpluggable (measured: libvirt
// 9.0 refuses to unplug vCPU 1 of a domain booted with 2, "vcpu '1' can't be unplugged"); the
// others disabled and hotpluggable.
std::vector<VcpuInfo> ImpliedVcpuMap(unsigned maximum, unsigned current);

// The XML of the memory device with this alias, exactly as in `domain_xml` (with <address>).
Result<std::string> MemoryDeviceXml(std::string_view domain_xml, const std::string& alias);

// The virtio-mem device `alias` of `domain_xml` with only <requested> set to
// `requested_bytes`: what virDomainUpdateDeviceFlags needs to resize it.
Result<std::string> VirtioMemRequestXml(std::string_view domain_xml, const std::string& alias,
                                        uint64_t requested_bytes);

// The persistent twin of live memory device `alias`: the device in `inactive_xml` with the
// same model and <address> (the inactive definition has no aliases). Needed because libvirt
// matches AFFECT_CONFIG updates/detaches against the inactive definition.
Result<std::string> InactiveMemoryDeviceXml(std::string_view inactive_xml,
                                            std::string_view live_xml, const std::string& alias);

// One virtio-mem device XML with <requested> set to `requested_bytes`.
Result<std::string> WithRequestedSize(std::string_view device_xml, uint64_t requested_bytes);

// A new DIMM of `size_bytes` on NUMA node `node`.
std::string DimmXml(uint64_t size_bytes, int node);

}  // namespace hotplug::backends::libvirt

// The vCPUs unplugged from a TCG domain in its current QEMU process, kept in the domain's
// LIVE metadata: it survives an operator or libvirtd restart and vanishes with the QEMU
// process, exactly as long as the danger lasts (QEMU 7.2 aborts in tcg_register_thread when
// such a vCPU is plugged again: design §4).
#pragma once

#include <set>
#include <string>
#include <string_view>

namespace hotplug::backends::libvirt {

inline constexpr const char* kTcgMetadataUri = "https://hotplug.dev/xmlns/tcg";
inline constexpr const char* kTcgMetadataPrefix = "hotplug";

// <unplugged vcpus="2,3"/>
std::string FormatUnpluggedVcpus(const std::set<unsigned>& vcpus);

// The set written by FormatUnpluggedVcpus; ids that do not parse are skipped.
std::set<unsigned> ParseUnpluggedVcpus(std::string_view element_xml);

}  // namespace hotplug::backends::libvirt

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

// <unplugged vcpus="2-3,5"/> (a range list; the comma lists of earlier versions read the same)
std::string FormatUnpluggedVcpus(const std::set<unsigned>& vcpus);

// The set written by FormatUnpluggedVcpus; empty when it does not parse.
std::set<unsigned> ParseUnpluggedVcpus(std::string_view element_xml);

}  // namespace hotplug::backends::libvirt

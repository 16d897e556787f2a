// The owner of a domain (backends/hypervisor.h's DomainClaim), kept in the domain's own
// metadata, live and (for a persistent domain) in its definition: every process that reaches
// the domain sees it, and it outlasts operator, libvirtd and domain restarts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "backends/hypervisor.h"

namespace hotplug::backends::libvirt {

inline constexpr const char* kOwnerMetadataUri = "https://hotplug.dev/xmlns/owner";
inline constexpr const char* kOwnerMetadataPrefix = "hotplugowner";

// <claim owner="default/web-01" uid="..." manager="node-a"/>
std::string FormatClaim(const DomainClaim& claim);

// The claim written by FormatClaim; nullopt when the element does not hold one (no owner).
std::optional<DomainClaim> ParseClaim(std::string_view element_xml);

}  // namespace hotplug::backends::libvirt

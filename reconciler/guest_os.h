// What the guest's operating system can do, by family: one small table. The OS comes from
// spec.guest.os or, when that is empty, from the domain's libosinfo metadata (the id
// virt-install writes, e.g. http://microsoft.com/win/10). Pure.
#pragma once

#include <string>
#include <string_view>

namespace hotplug::reconciler {

enum class OsFamily { kUnknown, kLinux, kWindows };

struct OsCapabilities {
  OsFamily family;
  const char* name;
  bool vcpu_plug;
  bool vcpu_unplug;
  bool dimm_unplug;
  const char* why;  // what the guest does instead, for messages
};

// Unknown: what the operator always assumed, as Linux (the oVirt matrix: RHEL plugs and
// unplugs). Windows (Server 2008 Datacenter and later, 8.x) hot-adds CPUs and memory but
// removes them only at a reboot.
inline constexpr OsCapabilities kOsFamilies[] = {
    {OsFamily::kUnknown, "an unknown OS", true, true, true, ""},
    {OsFamily::kLinux, "Linux", true, true, true, ""},
    {OsFamily::kWindows, "Windows", true, false, false,
     "Windows hot-adds vCPUs and memory but removes them only at a reboot"},
};

constexpr const OsCapabilities& CapabilitiesOf(OsFamily family) {
  return kOsFamilies[static_cast<size_t>(family)];
}

// The family of a libosinfo OS id (http://microsoft.com/win/10, http://debian.org/debian/12)
// or of a family word (linux, windows; any case). kUnknown for anything else, "" included.
OsFamily ClassifyOs(std::string_view os);

// The guest's OS for a pass: spec.guest.os, else the domain's libosinfo id.
struct GuestOs {
  std::string os;      // what was given, "" when nothing was
  std::string source;  // "spec.guest.os" or "the domain's libosinfo metadata"
  const OsCapabilities* capabilities;
  // "Windows (http://microsoft.com/win/10, from the domain's libosinfo metadata)"
  std::string Describe() const;
};
GuestOs ResolveGuestOs(const std::string& spec_os, const std::string& domain_os);

// The guest's capabilities as known between passes: spec.guest.os when given (what the next
// pass resolves first), else what the last pass described (status.guestOS, as
// GuestOs::Describe() wrote it); an unknown OS's when neither says.
const OsCapabilities& LastKnownCapabilities(const std::string& spec_os,
                                            const std::string& described);

}  // namespace hotplug::reconciler

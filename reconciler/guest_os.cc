#include "reconciler/guest_os.h"

#include <algorithm>
#include <cctype>
#include <iterator>

namespace hotplug::reconciler {
namespace {

static_assert(std::size(kOsFamilies) == static_cast<size_t>(OsFamily::kWindows) + 1);

// libosinfo ids of Linux distributions (the vendor part of the id), and the generic one.
constexpr std::string_view kLinuxVendors[] = {
    "debian.org/",         "ubuntu.com/",    "fedoraproject.org/", "redhat.com/rhel",
    "centos.org/",         "opensuse.org/",  "suse.com/",          "archlinux.org/",
    "alpinelinux.org/",    "gentoo.org/",    "almalinux.org/",     "rockylinux.org/",
    "oracle.com/ol",       "openeuler.org/", "mageia.org/",        "slackware.com/",
    "libosinfo.org/linux", "novell.com/",    "mandriva.com/",      "voidlinux.org/",
};

std::string Lower(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

}  // namespace

OsFamily ClassifyOs(std::string_view os) {
  const std::string id = Lower(os);
  if (id == "linux") return OsFamily::kLinux;
  if (id == "windows") return OsFamily::kWindows;
  if (id.find("microsoft.com/win") != std::string::npos) return OsFamily::kWindows;
  for (std::string_view vendor : kLinuxVendors) {
    if (id.find(vendor) != std::string::npos) return OsFamily::kLinux;
  }
  return OsFamily::kUnknown;
}

std::string GuestOs::Describe() const {
  if (os.empty()) return capabilities->name;
  return std::string(capabilities->name) + " (" + os + ", from " + source + ")";
}

GuestOs ResolveGuestOs(const std::string& spec_os, const std::string& domain_os) {
  GuestOs guest;
  if (!spec_os.empty()) {
    guest.os = spec_os;
    guest.source = "spec.guest.os";
  } else if (!domain_os.empty()) {
    guest.os = domain_os;
    guest.source = "the domain's libosinfo metadata";
  }
  guest.capabilities = &CapabilitiesOf(ClassifyOs(guest.os));
  return guest;
}

const OsCapabilities& LastKnownCapabilities(const std::string& spec_os,
                                            const std::string& described) {
  if (!spec_os.empty()) return CapabilitiesOf(ClassifyOs(spec_os));
  const std::string_view text(described);
  for (const OsCapabilities& family : kOsFamilies) {
    const std::string_view name(family.name);
    if (family.family != OsFamily::kUnknown && text.substr(0, name.size()) == name &&
        (text.size() == name.size() || text[name.size()] == ' ')) {
      return family;
    }
  }
  return CapabilitiesOf(OsFamily::kUnknown);
}

}  // namespace hotplug::reconciler

#include "backends/libvirt/owner_claim.h"

#include "backends/libvirt/xml_util.h"

namespace hotplug::backends::libvirt {
namespace {

std::string Attribute(const char* name, const std::string& value) {
  std::string escaped;
  for (char c : value) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      default:
        escaped += c;
    }
  }
  return std::string(" ") + name + "=\"" + escaped + "\"";
}

}  // namespace

std::string FormatClaim(const DomainClaim& claim) {
  return "<claim" + Attribute("owner", claim.owner) + Attribute("uid", claim.uid) +
         Attribute("manager", claim.manager) + "/>";
}

std::optional<DomainClaim> ParseClaim(std::string_view element_xml) {
  auto document = ParseXml(element_xml, "the owner metadata");
  if (!document.ok()) return std::nullopt;
  DomainClaim claim;
  claim.owner = XPathText(document.value(), "/*/@owner").value_or("");
  if (claim.owner.empty()) return std::nullopt;
  claim.uid = XPathText(document.value(), "/*/@uid").value_or("");
  claim.manager = XPathText(document.value(), "/*/@manager").value_or("");
  return claim;
}

}  // namespace hotplug::backends::libvirt

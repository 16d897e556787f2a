#include "backends/libvirt/tcg_replug_record.h"

#include "backends/libvirt/xml_util.h"
#include "backends/range_list.h"

namespace hotplug::backends::libvirt {

std::string FormatUnpluggedVcpus(const std::set<unsigned>& vcpus) {
  return "<unplugged vcpus=\"" + FormatRangeList({vcpus.begin(), vcpus.end()}) + "\"/>";
}

std::set<unsigned> ParseUnpluggedVcpus(std::string_view element_xml) {
  auto document = ParseXml(element_xml, "the hotplug metadata");
  if (!document.ok()) return {};
  const std::string list = XPathText(document.value(), "/*/@vcpus").value_or("");
  const std::vector<unsigned> ids = ParseRangeList(list).value_or(std::vector<unsigned>{});
  return {ids.begin(), ids.end()};
}

}  // namespace hotplug::backends::libvirt

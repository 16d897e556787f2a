#include "backends/libvirt/tcg_replug_record.h"

#include "backends/libvirt/xml_util.h"

namespace hotplug::backends::libvirt {

std::string FormatUnpluggedVcpus(const std::set<unsigned>& vcpus) {
  std::string list;
  for (unsigned id : vcpus) {
    if (!list.empty()) list += ',';
    list += std::to_string(id);
  }
  return "<unplugged vcpus=\"" + list + "\"/>";
}

std::set<unsigned> ParseUnpluggedVcpus(std::string_view element_xml) {
  std::set<unsigned> vcpus;
  auto document = ParseXml(element_xml, "the hotplug metadata");
  if (!document.ok()) return vcpus;
  const std::string list = XPathText(document.value(), "/*/@vcpus").value_or("");
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(start, end - start);
    if (!item.empty() && item.find_first_not_of("0123456789") == std::string::npos &&
        item.size() < 10) {
      vcpus.insert(static_cast<unsigned>(std::stoul(item)));
    }
    start = end + 1;
  }
  return vcpus;
}

}  // namespace hotplug::backends::libvirt

#include "backends/libvirt/domain_xml.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "backends/libvirt/xml_util.h"

namespace hotplug::backends::libvirt {
namespace {

std::string AliasXPath(const std::string& alias) {
  // Aliases are libvirt's own ([a-z0-9-_.]) or user "ua-..." names: no quotes to escape.
  return "/domain/devices/memory[alias/@name='" + alias + "']";
}

bool ValidAlias(const std::string& alias) {
  if (alias.empty()) return false;
  for (char c : alias) {
    if (c == '\'' || c == '"' || c == '[' || c == ']') return false;
  }
  return true;
}

// The <memory> device with `alias` in a domain XML, or why there is none.
Result<xmlNodePtr> FindMemoryDevice(const XmlDocument& document, const std::string& alias) {
  if (!ValidAlias(alias)) {
    return Status::Error(ErrorCode::kOperationInvalid,
                         "invalid memory device alias '" + alias + "'");
  }
  auto nodes = XPathNodes(document, AliasXPath(alias).c_str());
  if (nodes.empty()) {
    return Status::Error(ErrorCode::kOperationInvalid,
                         "the domain has no memory device with alias '" + alias + "'");
  }
  return nodes.front();
}

Status ParseVcpus(const XmlDocument& xml, ParsedDomainXml& parsed) {
  const uint64_t maximum = XPathUnsigned(xml, "/domain/vcpu").value_or(0);
  const uint64_t current = XPathUnsigned(xml, "/domain/vcpu/@current").value_or(maximum);
  if (maximum > kMaxVcpusInXml || current > maximum) {
    return Status::Error(ErrorCode::kInternal,
                         "the domain XML says <vcpu current='" + std::to_string(current) + "'>" +
                             std::to_string(maximum) + "</vcpu>; expected at most " +
                             std::to_string(kMaxVcpusInXml) + " vCPUs, current <= maximum");
  }
  parsed.maximum_vcpus = static_cast<unsigned>(maximum);
  parsed.current_vcpus = static_cast<unsigned>(current);
  auto nodes = XPathNodes(xml, "/domain/vcpus/vcpu");
  if (nodes.empty()) return Status::Ok();
  parsed.vcpus.resize(parsed.maximum_vcpus);
  for (unsigned id = 0; id < parsed.maximum_vcpus; ++id) parsed.vcpus[id].id = id;
  for (xmlNodePtr node : nodes) {
    auto id = XPathUnsigned(xml, "@id", node);
    if (!id || *id >= parsed.maximum_vcpus) continue;
    VcpuInfo& vcpu = parsed.vcpus[*id];
    vcpu.enabled = XPathText(xml, "@enabled", node).value_or("no") == "yes";
    vcpu.hotpluggable = XPathText(xml, "@hotpluggable", node).value_or("no") == "yes";
    vcpu.order = static_cast<unsigned>(
        std::min<uint64_t>(XPathUnsigned(xml, "@order", node).value_or(0), UINT32_MAX));
  }
  return Status::Ok();
}

void ParseMemory(const XmlDocument& xml, ParsedDomainXml& parsed) {
  MemoryInfo& memory = parsed.memory;
  const uint64_t total = XPathBytes(xml, "/domain/memory").value_or(0);
  memory.maximum_bytes = XPathBytes(xml, "/domain/maxMemory").value_or(total);
  memory.slots = static_cast<unsigned>(XPathUnsigned(xml, "/domain/maxMemory/@slots").value_or(0));
  memory.current_bytes = XPathBytes(xml, "/domain/currentMemory").value_or(total);
  uint64_t device_bytes = 0;
  for (xmlNodePtr node : XPathNodes(xml, "/domain/devices/memory")) {
    const std::string model = XPathText(xml, "@model", node).value_or("");
    MemoryDevice device;
    if (model == "dimm") {
      device.model = MemoryDevice::Model::kDimm;
    } else if (model == "virtio-mem") {
      device.model = MemoryDevice::Model::kVirtioMem;
    } else {
      continue;  // nvdimm, virtio-pmem, sgx-epc: not ours to resize
    }
    device.alias = XPathText(xml, "alias/@name", node).value_or("");
    device.size_bytes = XPathBytes(xml, "target/size", node).value_or(0);
    device.node = static_cast<int>(XPathUnsigned(xml, "target/node", node).value_or(0));
    if (!XPathText(xml, "target/node", node)) device.node = -1;
    if (device.model == MemoryDevice::Model::kVirtioMem) {
      device.block_bytes = XPathBytes(xml, "target/block", node).value_or(0);
      device.requested_bytes = XPathBytes(xml, "target/requested", node).value_or(0);
      device.current_bytes = XPathBytes(xml, "target/current", node).value_or(0);
    } else {
      device.current_bytes = device.size_bytes;
    }
    device_bytes += device.size_bytes;
    memory.devices.push_back(std::move(device));
  }
  uint64_t cell_bytes = 0;
  for (xmlNodePtr cell : XPathNodes(xml, "/domain/cpu/numa/cell")) {
    const uint64_t amount = XPathUnsigned(xml, "@memory", cell).value_or(0);
    const std::string unit = XPathText(xml, "@unit", cell).value_or("KiB");
    uint64_t scale = 1024;
    if (unit == "MiB" || unit == "M") scale = 1024ull * 1024;
    if (unit == "GiB" || unit == "G") scale = 1024ull * 1024 * 1024;
    if (unit == "b" || unit == "bytes") scale = 1;
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(amount, scale, &bytes) ||
        __builtin_add_overflow(cell_bytes, bytes, &cell_bytes)) {
      cell_bytes = 0;  // nonsense sizes: fall back to the total below
      break;
    }
  }
  if (cell_bytes > 0) {
    memory.boot_bytes = cell_bytes;
  } else {
    memory.boot_bytes = total > device_bytes ? total - device_bytes : total;
  }
}

}  // namespace

Result<ParsedDomainXml> ParseDomainXml(std::string_view text) {
  auto document = ParseXml(text, "the domain XML");
  if (!document.ok()) return document.status();
  const XmlDocument& xml = document.value();
  ParsedDomainXml parsed;
  parsed.domain_type = XPathText(xml, "/domain/@type").value_or("");
  parsed.tcg = parsed.domain_type == "qemu";
  if (Status vcpus = ParseVcpus(xml, parsed); !vcpus.ok()) return vcpus;
  parsed.topology.sockets =
      static_cast<unsigned>(XPathUnsigned(xml, "/domain/cpu/topology/@sockets").value_or(0));
  parsed.topology.dies =
      static_cast<unsigned>(XPathUnsigned(xml, "/domain/cpu/topology/@dies").value_or(0));
  parsed.topology.cores =
      static_cast<unsigned>(XPathUnsigned(xml, "/domain/cpu/topology/@cores").value_or(0));
  parsed.topology.threads =
      static_cast<unsigned>(XPathUnsigned(xml, "/domain/cpu/topology/@threads").value_or(0));
  parsed.has_pinning = !XPathNodes(xml, "/domain/cputune/vcpupin").empty() ||
                       XPathText(xml, "/domain/vcpu/@cpuset").has_value();
  ParseMemory(xml, parsed);
  parsed.has_agent_channel =
      !XPathNodes(xml, "/domain/devices/channel/target[@name='org.qemu.guest_agent.0']").empty();
  return parsed;
}

std::vector<VcpuInfo> ImpliedVcpuMap(unsigned maximum, unsigned current) {
  std::vector<VcpuInfo> vcpus(maximum);
  for (unsigned id = 0; id < maximum; ++id) {
    vcpus[id].id = id;
    vcpus[id].enabled = id < current;
    vcpus[id].hotpluggable = id != 0;
  }
  return vcpus;
}

Result<std::string> MemoryDeviceXml(std::string_view domain_xml, const std::string& alias) {
  auto document = ParseXml(domain_xml, "the domain XML");
  if (!document.ok()) return document.status();
  auto device = FindMemoryDevice(document.value(), alias);
  if (!device.ok()) return device.status();
  return NodeToString(document.value().doc.get(), device.value());
}

Result<std::string> WithRequestedSize(std::string_view device_xml, uint64_t requested_bytes) {
  if (requested_bytes % 1024 != 0) {
    return Status::Error(ErrorCode::kOperationInvalid, "virtio-mem requested size " +
                                                           std::to_string(requested_bytes) +
                                                           " bytes is not a whole number of KiB");
  }
  auto document = ParseXml(device_xml, "the memory device XML");
  if (!document.ok()) return document.status();
  const XmlDocument& xml = document.value();
  xmlNodePtr root = xmlDocGetRootElement(xml.doc.get());
  if (XPathText(xml, "@model", root).value_or("") != "virtio-mem") {
    return Status::Error(ErrorCode::kOperationInvalid, "the memory device is not virtio-mem");
  }
  auto requested = XPathNodes(xml, "target/requested", root);
  if (requested.empty()) {
    return Status::Error(ErrorCode::kOperationInvalid,
                         "the virtio-mem device has no <requested> element");
  }
  const std::string kib = std::to_string(requested_bytes / 1024);
  xmlNodeSetContent(requested.front(), reinterpret_cast<const xmlChar*>(kib.c_str()));
  xmlSetProp(requested.front(), reinterpret_cast<const xmlChar*>("unit"),
             reinterpret_cast<const xmlChar*>("KiB"));
  return NodeToString(xml.doc.get(), root);
}

Result<std::string> VirtioMemRequestXml(std::string_view domain_xml, const std::string& alias,
                                        uint64_t requested_bytes) {
  auto device = MemoryDeviceXml(domain_xml, alias);
  if (!device.ok()) return device.status();
  auto updated = WithRequestedSize(device.value(), requested_bytes);
  if (!updated.ok()) {
    return Status::Error(updated.status().code(),
                         "memory device '" + alias + "': " + updated.status().message());
  }
  return updated;
}

Result<std::string> InactiveMemoryDeviceXml(std::string_view inactive_xml,
                                            std::string_view live_xml, const std::string& alias) {
  auto live = ParseXml(live_xml, "the live domain XML");
  if (!live.ok()) return live.status();
  auto device = FindMemoryDevice(live.value(), alias);
  if (!device.ok()) return device.status();
  std::string match = "/domain/devices/memory[@model='" +
                      XPathText(live.value(), "@model", device.value()).value_or("") + "']";
  for (const char* attribute : {"type", "domain", "bus", "slot", "function"}) {
    const std::string expr = std::string("address/@") + attribute;
    auto value = XPathText(live.value(), expr.c_str(), device.value());
    if (value && value->find('\'') == std::string::npos) {
      match += "[" + expr + "='" + *value + "']";
    }
  }
  auto inactive = ParseXml(inactive_xml, "the inactive domain XML");
  if (!inactive.ok()) return inactive.status();
  auto nodes = XPathNodes(inactive.value(), match.c_str());
  if (nodes.size() != 1) {
    return Status::Error(ErrorCode::kOperationInvalid,
                         "memory device '" + alias + "' has " + std::to_string(nodes.size()) +
                             " twins in the persistent definition (by address); expected one");
  }
  return NodeToString(inactive.value().doc.get(), nodes.front());
}

std::string DimmXml(uint64_t size_bytes, int node) {
  return "<memory model='dimm'><target><size unit='KiB'>" + std::to_string(size_bytes / 1024) +
         "</size><node>" + std::to_string(node < 0 ? 0 : node) + "</node></target></memory>";
}

}  // namespace hotplug::backends::libvirt

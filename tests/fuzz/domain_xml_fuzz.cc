// libFuzzer target: the libvirt backend's parsers of what the daemon and QEMU send (domain
// XML, the virtio-mem device XML built from it, the query-cpus-fast reply) never crash, never
// allocate for absurd counts, and what they accept is self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "backends/libvirt/domain_xml.h"
#include "backends/libvirt/qemu_cpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hotplug::backends::libvirt;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseDomainXml(text);
  if (parsed.ok()) {
    const ParsedDomainXml& d = parsed.value();
    if (d.maximum_vcpus > kMaxVcpusInXml || d.current_vcpus > d.maximum_vcpus) std::abort();
    if (!d.vcpus.empty() && d.vcpus.size() != d.maximum_vcpus) std::abort();
    for (size_t id = 0; id < d.vcpus.size(); ++id) {
      if (d.vcpus[id].id != id) std::abort();
    }
    auto request = VirtioMemRequestXml(text, "virtiomem0", 256ull << 20);
    if (request.ok() && request.value().find("262144") == std::string::npos) std::abort();
  }
  (void)ParseQueryCpusFast(text);
  return 0;
}

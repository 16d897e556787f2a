#include "backends/libvirt/qemu_cpus.h"

#include <cctype>
#include <string>

namespace hotplug::backends::libvirt {

Result<std::set<unsigned>> ParseQueryCpusFast(std::string_view reply) {
  if (reply.find("\"return\"") == std::string_view::npos) {
    return Status::Error(ErrorCode::kInternal,
                         "query-cpus-fast: unexpected reply: " + std::string(reply.substr(0, 200)));
  }
  // The reply is QEMU's fixed JSON shape; a key scan is enough and cannot be confused by
  // strings, as no string value in it contains this key.
  constexpr std::string_view kKey = "\"cpu-index\"";
  std::set<unsigned> indexes;
  size_t position = 0;
  while ((position = reply.find(kKey, position)) != std::string_view::npos) {
    position += kKey.size();
    while (position < reply.size() && (reply[position] == ' ' || reply[position] == ':')) {
      ++position;
    }
    unsigned value = 0;
    bool digits = false;
    while (position < reply.size() && std::isdigit(static_cast<unsigned char>(reply[position]))) {
      value = value * 10 + static_cast<unsigned>(reply[position] - '0');
      digits = true;
      ++position;
    }
    if (digits) indexes.insert(value);
  }
  return indexes;
}

}  // namespace hotplug::backends::libvirt

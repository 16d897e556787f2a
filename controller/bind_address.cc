#include "controller/bind_address.h"

#include <charconv>

namespace hotplug::controller {

std::optional<BindAddress> ParseBindAddress(std::string_view text) {
  BindAddress address;
  std::string_view port;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    address.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    address.host = text.substr(0, colon);
    if (address.host.find(':') != std::string::npos) return std::nullopt;  // v6 needs []
    port = text.substr(colon + 1);
  }
  const char* end = port.data() + port.size();
  auto [parsed_end, error] = std::from_chars(port.data(), end, address.port);
  if (port.empty() || error != std::errc() || parsed_end != end) return std::nullopt;
  return address;
}

}  // namespace hotplug::controller

// A listen address as controller-runtime's --metrics-bind-address and
// --health-probe-bind-address take it (Go's net.Listen("tcp", address)): "host:port",
// ":port" (every interface) or "[v6]:port"; port 0 picks a free port. A bare port ("8080")
// is not an address. ("0", which turns a server off, is for the caller to check first.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hotplug::controller {

struct BindAddress {
  std::string host;  // "" = every interface; an IPv6 literal has no brackets
  uint16_t port = 0;
};

// nullopt when `text` is not one of the forms above.
std::optional<BindAddress> ParseBindAddress(std::string_view text);

// What a bad address is told: the forms that are accepted.
inline constexpr const char* kBindAddressForms = "host:port, :port or [v6]:port";

}  // namespace hotplug::controller

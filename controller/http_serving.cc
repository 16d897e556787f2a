#include "controller/http_serving.h"

#include "controller/bind_address.h"

namespace hotplug::controller {

std::optional<std::string> CivetListeningPort(std::string_view bind_address) {
  std::optional<BindAddress> parsed = ParseBindAddress(bind_address);
  if (!parsed) return std::nullopt;
  std::string host = parsed->host.empty() ? "0.0.0.0" : parsed->host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(parsed->port);
}

std::vector<std::string> CivetOptions(const std::string& listening_port) {
  return {"listening_ports",    listening_port,
          "num_threads",        std::to_string(kHttpWorkers),
          "connection_queue",   std::to_string(kHttpWorkers),
          "request_timeout_ms", std::to_string(kHttpRequestTimeoutMs),
          "enable_keep_alive",  "no",
          "tcp_nodelay",        "1"};
}

}  // namespace hotplug::controller

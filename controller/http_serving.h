// How the operator's HTTP endpoints (the health probes, /metrics) are served: by civetweb,
// which prometheus-cpp already brings, configured so that slow and idle clients cannot
// starve the probes. civetweb gives each connection a worker thread while it reads the
// request, so there are more workers than a crowd of idle or trickling connections (200
// idle and 10 slow clients are measured: tests/bench/endpoint_bench.py), and a request whose
// head has not arrived within the deadline is dropped.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hotplug::controller {

// Workers per server: each holds one connection while its request arrives.
inline constexpr int kHttpWorkers = 256;
// A request head (and each write of an answer) must complete within this; a probe sends its
// request at once.
inline constexpr int kHttpRequestTimeoutMs = 2000;

// civetweb's "listening_ports" for a bind address (controller/bind_address.h): ":8080" is
// every IPv4 interface, "0.0.0.0:8080"; an IPv6 literal is bracketed. nullopt when malformed.
std::optional<std::string> CivetListeningPort(std::string_view bind_address);

// civetweb's options (name, value, name, value, ...) for a server on `listening_port`: the
// workers and deadlines above, no file serving, no keep-alive.
std::vector<std::string> CivetOptions(const std::string& listening_port);

}  // namespace hotplug::controller

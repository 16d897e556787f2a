// The health endpoints kubelet probes: GET /healthz and /livez (the process answers) and
// GET /readyz (ready once the cache has synced), served by civetweb with enough workers and
// request deadlines that slow or idle clients cannot starve a probe (http_serving.h). It
// binds exactly the address it is given (controller/bind_address.h: "127.0.0.1:0" picks a
// port, ":8081" means every interface) and reports the port it got.
#pragma once

#include <functional>
#include <string>

struct mg_connection;
struct mg_context;

namespace hotplug::controller {

class HealthServer {
 public:
  // `ready` is called per /readyz request, from civetweb's worker threads (concurrently).
  explicit HealthServer(std::function<bool()> ready) : ready_(std::move(ready)) {}
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // Binds and starts serving. False (with `error`) when the address is bad or taken.
  bool Start(const std::string& address, std::string* error);
  void Stop();
  // The port bound (after Start).
  int port() const { return port_; }
  // "host:port" as bound, e.g. "127.0.0.1:43211" or "0.0.0.0:8081".
  const std::string& bound_address() const { return bound_address_; }

 private:
  static int Handle(mg_connection* connection, void* self);

  std::function<bool()> ready_;
  mg_context* server_ = nullptr;  // civetweb; its threads call Handle
  int port_ = 0;
  std::string bound_address_;
};

}  // namespace hotplug::controller

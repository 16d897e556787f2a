// The health endpoints kubelet probes: GET /healthz (the process answers) and GET /readyz
// (ready once the cache has synced). A tiny HTTP/1.1 server on plain POSIX sockets with one
// thread ("health"); it binds exactly the address it is given (controller/bind_address.h:
// "127.0.0.1:0" picks a port, ":8081" means every interface) and reports the port it got.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace hotplug::controller {

class HealthServer {
 public:
  // `ready` is called per /readyz request, from the health thread.
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
  void RecordBoundAddress();
  void Serve();
  void Answer(int client);

  std::function<bool()> ready_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe that tells the thread to stop
  int port_ = 0;
  std::string bound_address_;
  std::thread thread_;  // "health"
};

}  // namespace hotplug::controller

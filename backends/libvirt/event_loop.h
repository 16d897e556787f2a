// libvirt's default event loop, run on one named thread ("libvirt-events"). libvirt lets a
// process register its default loop implementation only once, and only one thread may run
// it, so the loop is shared: the first Acquire() starts the thread, the last owner to let go
// stops and joins it. Keepalive, close callbacks and domain events are all delivered on it.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

namespace hotplug::backends::libvirt {

class EventLoop {
 public:
  // Registers libvirt's default event implementation (once per process) and returns the
  // running loop, starting its thread when no one holds it. Must be called before the
  // first virConnectOpen whose connection should get keepalive and events.
  static std::shared_ptr<EventLoop> Acquire();

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  // Stops the loop and joins its thread. Connections using it must be closed before.
  ~EventLoop();

 private:
  EventLoop();
  void Run();

  std::atomic<bool> stop_requested_{false};
  std::thread thread_;
};

}  // namespace hotplug::backends::libvirt

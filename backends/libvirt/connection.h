// The one libvirt connection of a LibvirtHypervisor: opened on first use, with keepalive,
// and reopened with capped exponential backoff on the next use after it was lost (daemon
// restarted, socket closed, keepalive expired).
#pragma once

#include <libvirt/libvirt.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/hypervisor.h"
#include "common/thread_annotations.h"

namespace hotplug::backends::libvirt {

using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;

struct ConnectionOptions {
  std::string uri = "qemu:///system";
  int keepalive_interval_s = 5;  // a dead daemon is noticed after interval * (count + 1)
  unsigned keepalive_count = 3;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

// An open connection and what was registered on it. Shared by the calls using it: the last
// one to let go deregisters the callbacks and closes it.
class OpenConnection {
 public:
  explicit OpenConnection(virConnectPtr conn);
  OpenConnection(const OpenConnection&) = delete;
  OpenConnection& operator=(const OpenConnection&) = delete;
  ~OpenConnection();

  virConnectPtr get() const { return conn_; }
  // False once libvirt reported the connection closed (close callback, keepalive, EOF).
  bool alive() const;
  // Remembers a domain event callback id to deregister before closing.
  void AddDomainEventCallback(int callback_id) { event_callback_ids_.push_back(callback_id); }

 private:
  static void OnClosed(virConnectPtr conn, int reason, void* opaque);

  virConnectPtr conn_;
  bool close_callback_registered_ = false;
  std::atomic<bool> closed_{false};      // written by libvirt's event-loop thread
  std::vector<int> event_callback_ids_;  // written only before the connection is shared
};

using ConnectionRef = std::shared_ptr<OpenConnection>;

// Threading: every member below is guarded by mutex_, the one mutex of the connection.
// Get() holds it while (re)opening, so concurrent callers wait for one open instead of
// racing; calls themselves run outside it, on a shared reference.
class Connection {
 public:
  // Called with each newly opened connection, before anyone else sees it (registers the
  // domain event callbacks). A failure is logged by the callee and does not fail the open.
  using OnOpen = std::function<void(OpenConnection&)>;

  Connection(ConnectionOptions options, SteadyNow now, OnOpen on_open);
  ~Connection();

  // The open connection, reopening it if it was lost and the backoff allows.
  // kHypervisorUnavailable with the last open error while the daemon stays unreachable.
  Result<ConnectionRef> Get();

  // Forgets `broken` (if it is still the current connection) after a call on it failed
  // with a connection error; the next Get() reopens at once.
  void Drop(const ConnectionRef& broken);

  // Closes the connection now (its last user closes it, if a call is in flight).
  void Close();

 private:
  const ConnectionOptions options_;
  const SteadyNow now_;
  const OnOpen on_open_;

  Mutex mutex_;
  ConnectionRef current_ GUARDED_BY(mutex_);
  std::chrono::steady_clock::time_point next_attempt_ GUARDED_BY(mutex_){};
  std::chrono::milliseconds backoff_ GUARDED_BY(mutex_){0};
  Status last_open_error_ GUARDED_BY(mutex_);
};

}  // namespace hotplug::backends::libvirt

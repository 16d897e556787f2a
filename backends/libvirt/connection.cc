#include "backends/libvirt/connection.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <utility>

#include "backends/libvirt/errors.h"

namespace hotplug::backends::libvirt {

OpenConnection::OpenConnection(virConnectPtr conn) : conn_(conn) {
  close_callback_registered_ =
      virConnectRegisterCloseCallback(conn_, &OpenConnection::OnClosed, this, nullptr) == 0;
  if (!close_callback_registered_) virResetLastError();
}

OpenConnection::~OpenConnection() {
  for (int id : event_callback_ids_) {
    virConnectDomainEventDeregisterAny(conn_, id);
  }
  if (close_callback_registered_) {
    virConnectUnregisterCloseCallback(conn_, &OpenConnection::OnClosed);
  }
  virConnectClose(conn_);
  virResetLastError();  // deregistering on a dead connection fails; nobody needs to know
}

bool OpenConnection::alive() const { return !closed_.load() && virConnectIsAlive(conn_) == 1; }

void OpenConnection::OnClosed(virConnectPtr /*conn*/, int /*reason*/, void* opaque) {
  static_cast<OpenConnection*>(opaque)->closed_.store(true);
}

Connection::Connection(ConnectionOptions options, SteadyNow now, OnOpen on_open)
    : options_(std::move(options)), now_(std::move(now)), on_open_(std::move(on_open)) {
  InstallQuietErrorHandler();
}

Connection::~Connection() { Close(); }

Result<ConnectionRef> Connection::Get() {
  MutexLock lock(mutex_);
  if (current_ && current_->alive()) return current_;
  current_.reset();
  const auto now = now_();
  if (now < next_attempt_) {
    const auto wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now).count();
    return Status::Error(ErrorCode::kHypervisorUnavailable,
                         "not connected to " + options_.uri + ", next attempt in " +
                             std::to_string(wait_ms) +
                             " ms; last error: " + last_open_error_.message(),
                         last_open_error_.native_code());
  }
  virConnectPtr conn = virConnectOpen(options_.uri.c_str());
  if (conn == nullptr) {
    Status error = StatusFromLastError("virConnectOpen(" + options_.uri + ")");
    last_open_error_ =
        Status::Error(ErrorCode::kHypervisorUnavailable, error.message(), error.native_code());
    backoff_ = backoff_.count() == 0 ? options_.initial_backoff
                                     : std::min(backoff_ * 2, options_.max_backoff);
    next_attempt_ = now + backoff_;
    return last_open_error_;
  }
  auto opened = std::make_shared<OpenConnection>(conn);
  if (virConnectSetKeepAlive(conn, options_.keepalive_interval_s, options_.keepalive_count) < 0) {
    virResetLastError();  // works without keepalive too; a dead peer is then seen on EOF
  }
  if (on_open_) on_open_(*opened);
  backoff_ = std::chrono::milliseconds(0);
  next_attempt_ = {};
  current_ = opened;
  return opened;
}

void Connection::Drop(const ConnectionRef& broken) {
  MutexLock lock(mutex_);
  if (current_ == broken) current_.reset();
}

void Connection::Close() {
  MutexLock lock(mutex_);
  current_.reset();
}

}  // namespace hotplug::backends::libvirt

// Domain events worth a fresh look (device removed or its removal failed, device added,
// virtio-mem size changed, lifecycle, job completed, the owner's claim changed), registered
// on each new connection and delivered to the sink by domain name on libvirt's event-loop
// thread. The owner-claim change this process's own ClaimDomain wrote is not delivered: the
// pass that wrote it is the one looking, and a second pass would only observe the domain
// again (every new object's first claim doubled the passes).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/hypervisor.h"
#include "backends/libvirt/connection.h"
#include "common/thread_annotations.h"

namespace hotplug::backends::libvirt {

// Threading: sink_ is guarded by mutex_; Deliver runs on the event-loop thread and calls the
// sink with mutex_ held, so SetSink never races a delivery and a replaced sink is never
// called again once SetSink returns. The sink must be quick (enqueue and return).
class DomainEvents {
 public:
  static constexpr std::chrono::seconds kOwnClaimEchoWindow{10};
  explicit DomainEvents(std::chrono::steady_clock::duration echo_window = kOwnClaimEchoWindow)
      : echo_window_(echo_window) {}
  void SetSink(Hypervisor::DomainEventSink sink);
  void Deliver(const char* domain_name);
  // A metadata-change event of the owner's claim: delivered unless it is the echo of this
  // process's own write (OwnClaimWriting).
  void DeliverClaimChange(const char* domain_name);
  // ClaimDomain is about to write `domain`'s claim: the one event that write causes is not
  // delivered, if it comes within kOwnClaimEchoWindow (an event lost with a connection must
  // not swallow a later one of another process). OwnClaimNotWritten takes that back.
  void OwnClaimWriting(const std::string& domain);
  void OwnClaimNotWritten(const std::string& domain);

  // Registers the callbacks on `connection` (all domains); each keeps `events` alive until
  // libvirt lets go of it.
  static void RegisterOn(const std::shared_ptr<DomainEvents>& events, OpenConnection& connection);

 private:
  const std::chrono::steady_clock::duration echo_window_;
  Mutex mutex_;
  Hypervisor::DomainEventSink sink_ GUARDED_BY(mutex_);
  // Per domain name, when each of this process's claim writes not yet echoed was made.
  std::unordered_map<std::string, std::vector<std::chrono::steady_clock::time_point>> own_claims_
      GUARDED_BY(mutex_);
};

}  // namespace hotplug::backends::libvirt

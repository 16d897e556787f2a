// Domain events worth a fresh look (device removed or its removal failed, device added,
// virtio-mem size changed, lifecycle, job completed), registered on each new connection and
// delivered to the sink by domain name on libvirt's event-loop thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "backends/hypervisor.h"
#include "backends/libvirt/connection.h"
#include "common/thread_annotations.h"

namespace hotplug::backends::libvirt {

// Threading: sink_ is guarded by mutex_; Deliver runs on the event-loop thread and calls the
// sink with mutex_ held, so SetSink never races a delivery and a replaced sink is never
// called again once SetSink returns. The sink must be quick (enqueue and return).
class DomainEvents {
 public:
  void SetSink(Hypervisor::DomainEventSink sink);
  void Deliver(const char* domain_name);

  // Registers the callbacks on `connection` (all domains); each keeps `events` alive until
  // libvirt lets go of it.
  static void RegisterOn(const std::shared_ptr<DomainEvents>& events, OpenConnection& connection);

 private:
  Mutex mutex_;
  Hypervisor::DomainEventSink sink_ GUARDED_BY(mutex_);
};

}  // namespace hotplug::backends::libvirt

#include "backends/libvirt/domain_events.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdio>
#include <memory>
#include <utility>

namespace hotplug::backends::libvirt {
namespace {

// Each registration owns a reference to the DomainEvents, released by libvirt (through
// FreeReference) once the callback is deregistered and not running: a late event can never
// reach a destroyed object.
using EventsRef = std::shared_ptr<DomainEvents>;

void FreeReference(void* opaque) { delete static_cast<EventsRef*>(opaque); }

void Notify(virDomainPtr domain, void* opaque) {
  (*static_cast<EventsRef*>(opaque))->Deliver(virDomainGetName(domain));
}

void OnLifecycle(virConnectPtr, virDomainPtr domain, int, int, void* opaque) {
  Notify(domain, opaque);
}

void OnDevice(virConnectPtr, virDomainPtr domain, const char*, void* opaque) {
  Notify(domain, opaque);
}

void OnMemorySizeChange(virConnectPtr, virDomainPtr domain, const char*, unsigned long long,
                        void* opaque) {
  Notify(domain, opaque);
}

void OnJobCompleted(virConnectPtr, virDomainPtr domain, virTypedParameterPtr, int, void* opaque) {
  Notify(domain, opaque);
}

}  // namespace

void DomainEvents::SetSink(Hypervisor::DomainEventSink sink) {
  MutexLock lock(mutex_);
  sink_ = std::move(sink);
}

void DomainEvents::Deliver(const char* domain_name) {
  if (domain_name == nullptr) return;
  MutexLock lock(mutex_);
  if (sink_) sink_(domain_name);
}

void DomainEvents::RegisterOn(const std::shared_ptr<DomainEvents>& events,
                              OpenConnection& connection) {
  struct Registration {
    int event_id;
    virConnectDomainEventGenericCallback callback;
    const char* name;
  };
  const Registration registrations[] = {
      {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), "lifecycle"},
      {VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_CALLBACK(OnDevice), "device-removed"},
      {VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED, VIR_DOMAIN_EVENT_CALLBACK(OnDevice),
       "device-removal-failed"},
      {VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, VIR_DOMAIN_EVENT_CALLBACK(OnDevice), "device-added"},
      {VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(OnMemorySizeChange),
       "memory-device-size-change"},
      {VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, VIR_DOMAIN_EVENT_CALLBACK(OnJobCompleted),
       "job-completed"},
  };
  for (const Registration& registration : registrations) {
    auto* reference = new EventsRef(events);
    const int id =
        virConnectDomainEventRegisterAny(connection.get(), nullptr, registration.event_id,
                                         registration.callback, reference, FreeReference);
    if (id < 0) {
      // Not deleted: whether libvirt already called FreeReference on this path differs
      // between versions, and a leaked pointer is cheaper than a double free.
      virErrorPtr error = virGetLastError();
      std::fprintf(stderr, "hotplug: libvirt %s events unavailable: %s\n", registration.name,
                   error != nullptr && error->message != nullptr ? error->message : "unknown");
      virResetLastError();
      continue;
    }
    connection.AddDomainEventCallback(id);
  }
}

}  // namespace hotplug::backends::libvirt

#include "backends/libvirt/domain_events.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdio>
#include <memory>
#include <string_view>
#include <utility>

#include "backends/libvirt/owner_claim.h"

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

// Only the owner's claim: the TCG unplug record, also metadata, changes nothing to look at.
void OnMetadataChange(virConnectPtr, virDomainPtr domain, int, const char* nsuri, void* opaque) {
  if (nsuri != nullptr && std::string_view(nsuri) == kOwnerMetadataUri) {
    (*static_cast<EventsRef*>(opaque))->DeliverClaimChange(virDomainGetName(domain));
  }
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

void DomainEvents::DeliverClaimChange(const char* domain_name) {
  if (domain_name == nullptr) return;
  MutexLock lock(mutex_);
  auto own = own_claims_.find(domain_name);
  if (own != own_claims_.end()) {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::chrono::steady_clock::time_point>& writes = own->second;
    std::erase_if(writes, [&](auto written) { return now - written >= echo_window_; });
    const bool echo = !writes.empty();
    if (echo) writes.erase(writes.begin());
    if (writes.empty()) own_claims_.erase(own);
    if (echo) return;
  }
  if (sink_) sink_(domain_name);
}

void DomainEvents::OwnClaimWriting(const std::string& domain) {
  MutexLock lock(mutex_);
  own_claims_[domain].push_back(std::chrono::steady_clock::now());
}

void DomainEvents::OwnClaimNotWritten(const std::string& domain) {
  MutexLock lock(mutex_);
  auto own = own_claims_.find(domain);
  if (own == own_claims_.end()) return;
  own->second.pop_back();
  if (own->second.empty()) own_claims_.erase(own);
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
      {VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(OnMetadataChange),
       "metadata-change"},
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

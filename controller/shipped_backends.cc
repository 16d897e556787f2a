// The backends of the shipped hotplug-operator: libvirt only (see hypervisor_backend.h).
#include "controller/hypervisor_backend.h"

namespace hotplug::controller {

HypervisorBackends RegisteredBackends() {
  HypervisorBackends backends;
  backends.push_back(MakeLibvirtBackend());
  return backends;
}

}  // namespace hotplug::controller

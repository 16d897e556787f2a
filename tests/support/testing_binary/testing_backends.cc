// The backends of hotplug-operator-testing: libvirt, and the in-memory fake for tests and
// benchmarks (see controller/hypervisor_backend.h).
#include "controller/hypervisor_backend.h"
#include "tests/support/testing_binary/fake_backend.h"

namespace hotplug::controller {

HypervisorBackends RegisteredBackends() {
  HypervisorBackends backends;
  backends.push_back(MakeLibvirtBackend());
  backends.push_back(MakeFakeBackend());
  return backends;
}

}  // namespace hotplug::controller

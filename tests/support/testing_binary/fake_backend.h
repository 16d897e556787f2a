// --hypervisor=fake for hotplug-operator-testing: in-memory domains (--fake-domains,
// --fake-domains-file), a call log shared across restarts and replicas (--fake-call-log) and a
// latency per vCPU change (--fake-vcpu-latency). See fake_setup.h.
#pragma once

#include <memory>

#include "controller/hypervisor_backend.h"

namespace hotplug::controller {

std::unique_ptr<HypervisorBackend> MakeFakeBackend();

}  // namespace hotplug::controller

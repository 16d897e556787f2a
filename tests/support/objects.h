// ElasticVMs for tests: one builder and the few questions tests ask of an object.
// Header-only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "crd/elasticvm.h"

namespace hotplug::testing {

// default/`name`, generation 1, asking for `vcpus` (nullopt: vCPUs not managed) of `domain`
// ("" = the name).
inline crd::ElasticVM MakeElasticVM(const std::string& name, std::optional<int64_t> vcpus,
                                    const std::string& domain = "") {
  crd::ElasticVM vm;
  vm.metadata.name = name;
  vm.metadata.namespace_ = "default";
  vm.metadata.generation = 1;
  vm.spec.domain = domain;
  vm.spec.cpu.vcpus = vcpus;
  return vm;
}

// "True/Synced": the Ready condition's status and reason; "" when there is none.
inline std::string ReadyReason(const std::optional<crd::ElasticVM>& vm) {
  if (!vm) return "";
  const crd::Condition* ready = crd::FindCondition(vm->status, "Ready");
  return ready ? ready->status + "/" + ready->reason : "";
}

}  // namespace hotplug::testing

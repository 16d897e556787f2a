#include "crd/elasticvm.h"

namespace hotplug::crd {

std::string ElasticVM::TargetNode() const {
  if (!spec.node_name.empty()) return spec.node_name;
  auto it = metadata.labels.find(kNodeLabel);
  return it == metadata.labels.end() ? std::string() : it->second;
}

const Condition* FindCondition(const ElasticVMStatus& status, const std::string& type) {
  for (const auto& c : status.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

}  // namespace hotplug::crd

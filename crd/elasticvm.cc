#include "crd/elasticvm.h"

namespace hotplug::crd {

const char* GuestOnlineName(GuestOnline value) {
  switch (value) {
    case GuestOnline::kAgent:
      return "agent";
    case GuestOnline::kNone:
      return "none";
    case GuestOnline::kAuto:
      break;
  }
  return "auto";
}

const char* MemoryMethodName(MemoryMethod value) {
  switch (value) {
    case MemoryMethod::kVirtioMem:
      return "virtio-mem";
    case MemoryMethod::kDimm:
      return "dimm";
    case MemoryMethod::kBalloon:
      return "balloon";
    case MemoryMethod::kAuto:
      break;
  }
  return "auto";
}

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

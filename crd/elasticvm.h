// The ElasticVM API (group hotplug.dev, version v1alpha1) as C++ types. The field names
// mirror crd/hotplug.dev_elasticvms.yaml; crd/codec.h turns them into JSON/YAML and back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "crd/autoscale.h"
#include "crd/quantity.h"

namespace hotplug::crd {

inline constexpr const char* kGroup = "hotplug.dev";
inline constexpr const char* kVersion = "v1alpha1";
inline constexpr const char* kApiVersion = "hotplug.dev/v1alpha1";
inline constexpr const char* kKind = "ElasticVM";
inline constexpr const char* kPlural = "elasticvms";
// A label an agent may use instead of spec.nodeName, so a label selector can filter watches.
inline constexpr const char* kNodeLabel = "hotplug.dev/node";

struct ObjectMeta {
  std::string name;
  std::string namespace_;  // "namespace" is a keyword
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  std::string creation_timestamp;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

enum class GuestOnline { kAuto, kAgent, kNone };
enum class MemoryMethod { kAuto, kVirtioMem, kDimm, kBalloon };

// The API's spelling of each value, by value: what the codec writes and accepts.
inline constexpr const char* kGuestOnlineNames[] = {"auto", "agent", "none"};
inline constexpr const char* kMemoryMethodNames[] = {"auto", "virtio-mem", "dimm", "balloon"};
static_assert(std::size(kGuestOnlineNames) == static_cast<size_t>(GuestOnline::kNone) + 1);
static_assert(std::size(kMemoryMethodNames) == static_cast<size_t>(MemoryMethod::kBalloon) + 1);

inline const char* GuestOnlineName(GuestOnline value) {
  return kGuestOnlineNames[static_cast<size_t>(value)];
}
inline const char* MemoryMethodName(MemoryMethod value) {
  return kMemoryMethodNames[static_cast<size_t>(value)];
}

struct CpuSpec {
  std::optional<int64_t> vcpus;  // nullopt: vCPUs are not managed
  GuestOnline guest_online = GuestOnline::kAuto;
  std::optional<CpuAutoscale> autoscale;  // set: the load decides, vcpus is the start
};

struct MemorySpec {
  std::optional<Quantity> size;  // nullopt: memory is not managed
  MemoryMethod method = MemoryMethod::kAuto;
  bool allow_shrink = false;
  std::optional<MemoryAutoscale> autoscale;  // set: the load decides, size is the start
};

struct ElasticVMSpec {
  std::string domain;  // defaults to metadata.name (see EffectiveDomain)
  std::string node_name;
  CpuSpec cpu;
  MemorySpec memory;
  bool persist = true;
  bool suspend = false;
};

// metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  std::string last_transition_time;  // RFC 3339, UTC
  int64_t observed_generation = 0;
  friend bool operator==(const Condition&, const Condition&) = default;
};

struct Failure {
  std::string resource;  // "vcpu" or "memory"
  std::optional<int64_t> id;
  std::string operation;  // plug, unplug, online, attach, detach, resize, balloon
  std::string reason;
  std::string message;
  std::string time;
  friend bool operator==(const Failure&, const Failure&) = default;
};

struct VcpuStatus {
  int64_t desired = 0, current = 0, maximum = 0;
  std::string enabled;          // range list, e.g. "0-2,5"
  std::string online;           // the guest's own view, when known
  std::optional<int64_t> qemu;  // QEMU's count when it differs from libvirt's
  std::string pending;          // vCPUs whose unplug is requested but not confirmed
  // spec.cpu.autoscale: its last recommendation and the utilisation (percent) behind it.
  std::optional<int64_t> recommended, utilization;
  friend bool operator==(const VcpuStatus&, const VcpuStatus&) = default;
};

struct MemoryStatus {
  std::string desired;  // quantities, canonical text
  std::string current;
  std::string maximum;
  std::string method;
  // spec.memory.autoscale: its last recommendation and the available percent behind it.
  std::string recommended;
  std::optional<int64_t> available_percent;
  friend bool operator==(const MemoryStatus&, const MemoryStatus&) = default;
};

struct ElasticVMStatus {
  int64_t observed_generation = 0;
  std::optional<VcpuStatus> vcpus;
  std::optional<MemoryStatus> memory;
  std::vector<Condition> conditions;
  std::vector<Failure> failures;
  friend bool operator==(const ElasticVMStatus&, const ElasticVMStatus&) = default;
};

struct ElasticVM {
  ObjectMeta metadata;
  ElasticVMSpec spec;
  ElasticVMStatus status;
  // Set when the spec could not be decoded or validated: the object is still reconciled
  // (to report InvalidSpec) but nothing is changed on the VM.
  std::optional<std::string> spec_error;

  // The libvirt domain this object names.
  const std::string& EffectiveDomain() const {
    return spec.domain.empty() ? metadata.name : spec.domain;
  }
  // "namespace/name", the work-queue key.
  std::string Key() const { return metadata.namespace_ + "/" + metadata.name; }
  // The node this object is meant for: spec.nodeName, else the hotplug.dev/node label.
  std::string TargetNode() const;
};

// Finds a condition by type; nullptr when absent.
const Condition* FindCondition(const ElasticVMStatus& status, const std::string& type);

}  // namespace hotplug::crd

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
enum class PinningPolicy { kDealt, kDomain };
enum class MemoryMethod { kAuto, kVirtioMem, kDimm, kBalloon };

// The API's spelling of each value, by value: what the codec writes and accepts.
inline constexpr const char* kGuestOnlineNames[] = {"auto", "agent", "none"};
inline constexpr const char* kMemoryMethodNames[] = {"auto", "virtio-mem", "dimm", "balloon"};
inline constexpr const char* kPinningPolicyNames[] = {"dealt", "domain"};
static_assert(std::size(kPinningPolicyNames) == static_cast<size_t>(PinningPolicy::kDomain) + 1);
static_assert(std::size(kGuestOnlineNames) == static_cast<size_t>(GuestOnline::kNone) + 1);
static_assert(std::size(kMemoryMethodNames) == static_cast<size_t>(MemoryMethod::kBalloon) + 1);

inline const char* GuestOnlineName(GuestOnline value) {
  return kGuestOnlineNames[static_cast<size_t>(value)];
}
inline const char* MemoryMethodName(MemoryMethod value) {
  return kMemoryMethodNames[static_cast<size_t>(value)];
}

// Where a plugged vCPU is pinned: dealt, one host CPU per vCPU from host_cpus (the least
// used first); domain, the domain's <vcpu cpuset>.
struct PinningSpec {
  PinningPolicy policy = PinningPolicy::kDealt;
  std::string host_cpus;  // range list, e.g. "0-1"
};

struct CpuSpec {
  // At most one of the two (nullopt both: vCPUs are not managed). sockets: desired vCPUs =
  // sockets x the domain's dies x cores x threads, as oVirt and KubeVirt users size VMs.
  std::optional<int64_t> vcpus;
  std::optional<int64_t> sockets;
  GuestOnline guest_online = GuestOnline::kAuto;
  std::optional<PinningSpec> pinning;
  std::optional<CpuAutoscale> autoscale;  // set: the load decides, vcpus is the start
  bool managed() const { return vcpus.has_value() || sockets.has_value(); }
};

struct MemorySpec {
  std::optional<Quantity> size;  // nullopt: memory is not managed
  MemoryMethod method = MemoryMethod::kAuto;
  bool allow_shrink = false;
  std::optional<MemoryAutoscale> autoscale;  // set: the load decides, size is the start
  std::optional<int64_t> numa_node;  // where a new DIMM goes; nullopt: the emptiest cell
};

struct GuestSpec {
  // A libosinfo OS id (http://microsoft.com/win/2k22) or a family (linux, windows); "": the
  // domain's libosinfo metadata says.
  std::string os;
};

struct ElasticVMSpec {
  std::string domain;  // defaults to metadata.name (see EffectiveDomain)
  std::string node_name;
  CpuSpec cpu;
  MemorySpec memory;
  GuestSpec guest;
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
  std::string enabled;           // range list, e.g. "0-2,5"
  std::string online;            // the guest's own view, when known
  std::optional<int64_t> qemu;   // QEMU's count when it differs from libvirt's
  std::string pending;           // vCPUs whose unplug is requested but not confirmed
  std::string topology;          // "2 sockets x 2 cores x 2 threads", when the domain gives one
  std::string incomplete_cores;  // vCPUs of cores with some but not all threads enabled
  std::string in_flight;         // the vCPUs a pass under way is changing (progress status)
  std::map<int64_t, std::string> pins;  // enabled vCPU -> host CPUs, when the domain pins
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

// One guest NUMA cell as status.numa shows it.
struct NumaCellStatus {
  int64_t cell = 0;
  std::string cpus;    // the cell's vCPU ids
  std::string vcpus;   // those enabled
  std::string memory;  // boot memory plus the DIMMs on it
  friend bool operator==(const NumaCellStatus&, const NumaCellStatus&) = default;
};

struct ElasticVMStatus {
  int64_t observed_generation = 0;
  std::string guest_os;  // "Windows (http://microsoft.com/win/10, from ...)", when known
  std::optional<VcpuStatus> vcpus;
  std::optional<MemoryStatus> memory;
  std::vector<NumaCellStatus> numa;
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

// The hypervisor as the reconciler sees it: observe one domain, change one vCPU or one
// memory step at a time. backends/libvirt/ implements it over libvirt's C API and
// backends/fake/ in memory; nothing outside backends/libvirt/ knows libvirt exists.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "backends/load.h"

namespace hotplug::backends {

// Why a backend call failed. Stable: the reconciler maps these to condition reasons.
enum class ErrorCode {
  kOk = 0,
  kDomainNotFound,         // no domain with that name or UUID
  kDomainNotRunning,       // the domain exists but is not running
  kHypervisorUnavailable,  // the connection is down or the daemon does not answer
  kOperationInvalid,       // the hypervisor refused the request (bad id, already in state, ...)
  kTimeout,                // the hypervisor gave up waiting (e.g. a vCPU unplug under TCG)
  kGuestAgentUnavailable,  // the guest agent is not configured or does not answer
  kUnsupported,            // this hypervisor or domain cannot do what was asked
  kGuestRejected,          // the guest refused (e.g. memory that is not online_movable)
  kInternal,               // anything else; the message says what
};

// Stable CamelCase name of a code, as used in conditions and failure records.
const char* ErrorCodeName(ErrorCode code);

// A result that is cheap when OK and says what went wrong when not (leveldb's Status).
// `message` keeps the hypervisor's own words; `native_code` its numeric code (0 if none).
class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(ErrorCode code, std::string message, int native_code = 0) {
    Status s;
    s.code_ = code;
    s.message_ = std::move(message);
    s.native_code_ = native_code;
    return s;
  }
  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  int native_code() const { return native_code_; }
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  int native_code_ = 0;
};

// A value or the Status saying why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) {}  // NOLINT: implicit by design
  bool ok() const { return std::holds_alternative<T>(value_); }
  const T& value() const { return std::get<T>(value_); }
  T& value() { return std::get<T>(value_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(value_); }

 private:
  std::variant<T, Status> value_;
};

enum class DomainState { kRunning, kPaused, kShutOff, kCrashed, kOther };
const char* DomainStateName(DomainState state);

// A job that makes changing the domain unsafe.
enum class JobKind { kNone, kMigration, kSave, kSnapshot, kOther };
const char* JobKindName(JobKind job);

// One vCPU slot of the domain, 0 .. maximum-1, as libvirt's live <vcpus> map shows it.
struct VcpuInfo {
  unsigned id = 0;
  bool enabled = false;       // libvirt's view
  bool hotpluggable = false;  // vCPU 0 and boot vCPUs of some topologies are not
  unsigned order = 0;         // plug sequence; 0 when unknown or disabled
  // QEMU's own view when the backend read it (after an unplug timeout libvirt's `enabled`
  // can be stale: QEMU removed the CPU and libvirt never noticed). nullopt = not read.
  std::optional<bool> present_in_qemu;
  // Host CPUs it is pinned to (<cputune><vcpupin>); empty: no pin of its own.
  std::vector<unsigned> pin;
};

// One guest NUMA node: <cpu><numa><cell id cpus memory>.
struct NumaCell {
  unsigned id = 0;
  std::vector<unsigned> vcpus;  // the vCPU ids it holds
  uint64_t memory_bytes = 0;    // its boot memory (DIMMs on it are in MemoryInfo::devices)
  friend bool operator==(const NumaCell&, const NumaCell&) = default;
};

struct Topology {
  unsigned sockets = 0, dies = 0, cores = 0, threads = 0;  // 0 = not given
};

// A hot-pluggable memory device. (How memory is changed, the balloon included, is the API's
// crd::MemoryMethod; the planner chooses it.)
struct MemoryDevice {
  enum class Model { kDimm, kVirtioMem };
  std::string alias;  // e.g. "dimm0", "virtiomem0"
  Model model = Model::kDimm;
  uint64_t size_bytes = 0;       // DIMM size, or virtio-mem maximum (<size>)
  uint64_t requested_bytes = 0;  // virtio-mem only
  uint64_t current_bytes = 0;    // virtio-mem: what the guest has plugged; DIMM: size
  uint64_t block_bytes = 0;      // virtio-mem block size; 0 for DIMM
  int node = -1;                 // NUMA node, -1 when none
};

struct MemoryInfo {
  uint64_t current_bytes = 0;  // what the domain has now (boot memory + devices, or balloon)
  uint64_t maximum_bytes = 0;  // <maxMemory>, or <memory> when there is no hotplug
  uint64_t boot_bytes = 0;     // memory that is not in any device
  unsigned slots = 0;          // <maxMemory slots=...>
  std::vector<MemoryDevice> devices;
};

// The ElasticVM that manages a domain: one owner per domain (design §6). Recorded in the
// domain itself, so every process that reaches the domain (agents, the central Deployment,
// a restarted operator) sees the same owner.
struct DomainClaim {
  std::string owner;    // "namespace/name" of the ElasticVM
  std::string uid;      // its metadata.uid, so a namesake created later is another owner
  std::string manager;  // the claiming process's scope: its --node-name; "" central/standalone
  bool SameOwner(const DomainClaim& other) const {
    return owner == other.owner && uid == other.uid;
  }
  friend bool operator==(const DomainClaim&, const DomainClaim&) = default;
};

// Everything the reconciler may know about a domain, read in one call.
struct DomainObservation {
  std::string name;
  std::string uuid;
  DomainState state = DomainState::kOther;
  std::string state_reason;  // e.g. "crashed", "migrating"
  JobKind job = JobKind::kNone;
  bool persistent = false;
  bool tcg = false;  // <domain type='qemu'>: software emulation
  // TCG only: the vCPUs unplugged in the domain's current QEMU process. With `tcg` and each
  // vCPU's present_in_qemu, what backends/tcg_replug.h decides plug safety from.
  std::set<unsigned> unplugged_vcpus;
  unsigned maximum_vcpus = 0;
  unsigned host_max_vcpus = 0;  // 0 when unknown
  std::vector<VcpuInfo> vcpus;  // one entry per slot, size == maximum_vcpus
  Topology topology;
  std::vector<NumaCell> numa_cells;  // empty: no guest NUMA
  bool has_pinning = false;              // a <vcpupin> or <vcpu cpuset>
  std::vector<unsigned> default_cpuset;  // <vcpu cpuset>: the pin of vCPUs without their own
  unsigned host_cpus = 0;                // CPUs of the host; 0 when unknown
  bool guest_agent_available = false;
  std::optional<std::vector<unsigned>> guest_online_cpus;  // the guest's own view
  MemoryInfo memory;
  std::optional<DomainClaim> claim;  // the domain's owner; nullopt when none claimed it
  // The guest OS as the domain's libosinfo metadata names it (what virt-install writes:
  // <libosinfo:os id="http://microsoft.com/win/10"/>); "" when it has none.
  std::string guest_os;
};

// One memory change. The reconciler plans them; a backend carries out exactly one.
struct MemoryStep {
  enum class Op { kAttachDimm, kDetachDimm, kSetVirtioMemRequested, kSetBalloon };
  Op op = Op::kSetBalloon;
  std::string alias;   // device to detach or update
  uint64_t bytes = 0;  // DIMM size, virtio-mem requested size, or balloon target
  int node = 0;        // NUMA node for a new DIMM
};
const char* MemoryStepOpName(MemoryStep::Op op);

// Threading contract (every implementation keeps it; the controller relies on it):
// - Observe, SetVcpu, PinVcpu, OnlineGuestVcpus, ApplyMemoryStep, ClaimDomain and
//   ReleaseDomain may be called from several threads at once (one per controller worker),
//   for different domains and for the same one (two objects may name one domain). An implementation serialises what it must; a
//   caller does not lock around them.
// - SetEventSink may be called while those run (the controller sets the sink before its
//   workers start and clears it after they stopped).
// - The sink may be called from any thread: the backend's own event thread, or inside one
//   of the calls above on the caller's thread. It must be quick and thread-safe.
class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  // Reads the domain (by name or UUID) as it is now. Never cached across calls.
  virtual Result<DomainObservation> Observe(const std::string& domain) = 0;

  // Enables or disables ONE vCPU live; also in the persistent definition when `persist`
  // is true and the domain is persistent. kTimeout from an unplug means "requested, not
  // confirmed": the next Observe tells what really happened.
  virtual Status SetVcpu(const std::string& domain, unsigned id, bool enable, bool persist) = 0;

  // Pins vCPU `id` to `host_cpus`, live, and in the persistent definition when `persist` and
  // the domain is persistent. A disabled vCPU may be pinned: the pin is applied when it is
  // plugged, before the guest can run on it.
  virtual Status PinVcpu(const std::string& domain, unsigned id,
                         const std::vector<unsigned>& host_cpus, bool persist) = 0;

  // Asks the guest (through its agent) to bring these CPUs online.
  virtual Status OnlineGuestVcpus(const std::string& domain, const std::vector<unsigned>& ids) = 0;

  // Carries out one memory step live, and in the persistent definition when `persist`.
  virtual Status ApplyMemoryStep(const std::string& domain, const MemoryStep& step,
                                 bool persist) = 0;

  // Records `claim` as the domain's owner when it has none, already has this owner, or is
  // held by `replacing` (a claim the caller found stale). Returns the owner after the call:
  // `claim`, or the other owner's claim. Calls in one process are serialised; across
  // processes it is write-then-read-back, so of two claimants racing the one whose write
  // landed last owns the domain and the other learns it on its next Observe.
  virtual Result<DomainClaim> ClaimDomain(const std::string& domain, const DomainClaim& claim,
                                          const std::optional<DomainClaim>& replacing) = 0;

  // Removes the claim when `claim`'s owner holds it; Ok, changing nothing, when another
  // owner or none does, or the domain is gone.
  virtual Status ReleaseDomain(const std::string& domain, const DomainClaim& claim) = 0;

  // Called (see the threading contract above) with a domain name whenever something
  // happened to it that is worth a fresh look (device removed, started, stopped, migrated in,
  // its owner's claim changed, except by this process's own ClaimDomain: that pass is the one
  // looking already).
  using DomainEventSink = std::function<void(const std::string& domain)>;
  virtual void SetEventSink(DomainEventSink sink) = 0;

  // Reads the guest's load now (spec.*.autoscale). The default: this backend cannot.
  virtual Result<LoadSample> ReadLoad(const std::string& domain) {
    return Status::Error(ErrorCode::kUnsupported, "this backend cannot read " + domain + "'s load");
  }
};

}  // namespace hotplug::backends

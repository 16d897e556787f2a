#include "backends/fake/fake_hypervisor.h"

#include <algorithm>
#include <map>
#include <optional>
#include <thread>

#include "backends/tcg_replug.h"

namespace hotplug::backends::fake {
namespace {

// The error an armed fault makes the call on vCPU `id` fail with, counting the call against
// it (and disarming it after its last); nullopt when none is armed.
std::optional<Status> TakeFault(std::map<unsigned, Fault>& faults, unsigned id) {
  auto it = faults.find(id);
  if (it == faults.end()) return std::nullopt;
  Fault& f = it->second;
  Status status = Status::Error(f.code, f.message, f.native_code);
  if (f.remaining > 0 && --f.remaining == 0) faults.erase(it);
  return status;
}

// libvirt's numeric codes for the errors the fake imitates.
constexpr int kVirErrInternal = 1;
constexpr int kVirErrInvalidArg = 8;
constexpr int kVirErrNoDomain = 42;
constexpr int kVirErrOperationInvalid = 55;
constexpr int kVirErrOperationTimeout = 68;
constexpr int kVirErrAgentUnavailable = 74;
constexpr int kVirErrOperationUnsupported = 84;
constexpr int kVirErrNoConnect = 38;

void SleepFor(std::chrono::microseconds latency) {
  if (latency.count() > 0) std::this_thread::sleep_for(latency);
}

}  // namespace

// QEMU has a vCPU libvirt enables, unless a timed-out unplug removed it. Known only on TCG
// domains, where the backend reads QEMU's own view.
std::optional<bool> FakeHypervisor::PresentInQemu(const Domain& d, const VcpuInfo& v) {
  if (v.present_in_qemu || !d.spec.tcg) return v.present_in_qemu;
  return v.enabled;
}

void FakeHypervisor::AddDomain(const DomainSpec& spec) {
  Domain d;
  d.spec = spec;
  d.vcpus.resize(spec.maximum_vcpus);
  for (unsigned i = 0; i < spec.maximum_vcpus; ++i) {
    VcpuInfo& v = d.vcpus[i];
    v.id = i;
    v.enabled = i < spec.current_vcpus;
    v.hotpluggable = i != 0 && (spec.boot_vcpus_hotpluggable || !v.enabled);
    if (auto pin = spec.pins.find(i); pin != spec.pins.end()) v.pin = pin->second;
    v.order = v.enabled ? i + 1 : 0;
    if (v.enabled) d.guest_online.insert(i);
  }
  d.next_order = spec.current_vcpus + 1;
  d.persistent_vcpus = spec.current_vcpus;
  d.memory.boot_bytes = spec.boot_memory_bytes;
  d.memory.maximum_bytes = spec.maximum_memory_bytes;
  d.memory.slots = spec.memory_slots;
  if (spec.virtio_mem_size_bytes > 0) {
    MemoryDevice dev;
    dev.alias = "virtiomem0";
    dev.model = MemoryDevice::Model::kVirtioMem;
    dev.size_bytes = spec.virtio_mem_size_bytes;
    dev.block_bytes = spec.virtio_mem_block_bytes;
    dev.node = 0;
    d.memory.devices.push_back(dev);
  }
  d.balloon_bytes = spec.boot_memory_bytes;
  MutexLock lock(mu_);
  domains_[spec.name] = std::move(d);
}

void FakeHypervisor::RemoveDomain(const std::string& name) {
  {
    MutexLock lock(mu_);
    domains_.erase(name);
  }
  Fire(name);
}

void FakeHypervisor::SetState(const std::string& name, DomainState state) {
  {
    MutexLock lock(mu_);
    if (Domain* d = FindLocked(name)) d->spec.state = state;
  }
  Fire(name);
}

void FakeHypervisor::SetJob(const std::string& name, JobKind job) {
  MutexLock lock(mu_);
  if (Domain* d = FindLocked(name)) d->job = job;
}

void FakeHypervisor::SetGuestAgent(const std::string& name, bool available) {
  MutexLock lock(mu_);
  if (Domain* d = FindLocked(name)) d->spec.guest_agent = available;
}

void FakeHypervisor::SetLatency(std::chrono::microseconds observe,
                                std::chrono::microseconds set_vcpu) {
  MutexLock lock(mu_);
  observe_latency_ = observe;
  set_vcpu_latency_ = set_vcpu;
}

void FakeHypervisor::FailVcpu(const std::string& name, unsigned id, Fault fault) {
  MutexLock lock(mu_);
  if (Domain* d = FindLocked(name)) d->vcpu_faults[id] = std::move(fault);
}

void FakeHypervisor::FailPinVcpu(const std::string& name, unsigned id, Fault fault) {
  MutexLock lock(mu_);
  if (Domain* d = FindLocked(name)) d->pin_faults[id] = std::move(fault);
}

void FakeHypervisor::SetUnplugTimesOut(const std::string& name, bool times_out) {
  MutexLock lock(mu_);
  if (Domain* d = FindLocked(name)) d->unplug_times_out = times_out;
}

void FakeHypervisor::CompletePendingUnplugs(const std::string& name) {
  {
    MutexLock lock(mu_);
    Domain* d = FindLocked(name);
    if (d == nullptr || d->spec.tcg) return;  // under TCG libvirt never learns of it
    for (unsigned id : d->pending_unplugs) {
      d->vcpus[id].enabled = false;
      d->vcpus[id].order = 0;
      d->vcpus[id].present_in_qemu.reset();
      d->guest_online.erase(id);
    }
    d->pending_unplugs.clear();
  }
  Fire(name);
}

void FakeHypervisor::VanishAfterCalls(const std::string& name, int calls) {
  MutexLock lock(mu_);
  if (Domain* d = FindLocked(name)) d->vanish_after_calls = calls;
}

void FakeHypervisor::SetUnavailable(bool unavailable) {
  MutexLock lock(mu_);
  unavailable_ = unavailable;
}

void FakeHypervisor::ClearFaults() {
  MutexLock lock(mu_);
  unavailable_ = false;
  for (auto& [name, d] : domains_) {
    d.vcpu_faults.clear();
    d.pin_faults.clear();
    d.vanish_after_calls = -1;
    d.unplug_times_out = false;
  }
}

std::vector<FakeHypervisor::Call> FakeHypervisor::SuccessfulCalls() const {
  MutexLock lock(mu_);
  return calls_;
}

size_t FakeHypervisor::SetVcpuCallCount() const {
  MutexLock lock(mu_);
  return set_vcpu_calls_;
}

std::optional<DomainObservation> FakeHypervisor::Peek(const std::string& name) const {
  MutexLock lock(mu_);
  const Domain* d = FindLocked(name);
  if (d == nullptr) return std::nullopt;
  return ObserveLocked(*d);
}

std::optional<unsigned> FakeHypervisor::PersistentVcpus(const std::string& name) const {
  MutexLock lock(mu_);
  const Domain* d = FindLocked(name);
  if (d == nullptr) return std::nullopt;
  return d->persistent_vcpus;
}

FakeHypervisor::Domain* FakeHypervisor::FindLocked(const std::string& name) {
  auto it = domains_.find(name);
  return it == domains_.end() ? nullptr : &it->second;
}

const FakeHypervisor::Domain* FakeHypervisor::FindLocked(const std::string& name) const {
  auto it = domains_.find(name);
  return it == domains_.end() ? nullptr : &it->second;
}

DomainObservation FakeHypervisor::ObserveLocked(const Domain& d) const {
  DomainObservation o;
  o.name = d.spec.name;
  o.uuid = "fake-" + d.spec.name;
  o.state = d.spec.state;
  o.job = d.job;
  o.persistent = d.spec.persistent;
  o.tcg = d.spec.tcg;
  o.maximum_vcpus = d.spec.maximum_vcpus;
  o.host_max_vcpus = d.spec.host_max_vcpus;
  o.topology = d.spec.topology;
  o.numa_cells = d.spec.numa_cells;
  o.has_pinning = !d.spec.pins.empty() || !d.spec.default_cpuset.empty();
  o.default_cpuset = d.spec.default_cpuset;
  o.host_cpus = d.spec.host_cpus;
  o.guest_os = d.spec.guest_os;
  o.vcpus = d.vcpus;
  if (d.spec.tcg) {
    // Under TCG the backend reads QEMU's own view, as the libvirt backend does.
    for (VcpuInfo& v : o.vcpus) v.present_in_qemu = PresentInQemu(d, v);
    o.unplugged_vcpus = d.unplugged;
  }
  o.guest_agent_available = d.spec.guest_agent;
  if (d.spec.guest_agent) {
    o.guest_online_cpus = std::vector<unsigned>(d.guest_online.begin(), d.guest_online.end());
  }
  o.claim = d.claim;
  o.memory = d.memory;
  uint64_t devices = 0;
  for (const auto& dev : d.memory.devices) devices += dev.current_bytes;
  o.memory.current_bytes = d.balloon_bytes + devices;
  return o;
}

Status FakeHypervisor::CheckReachableLocked(const std::string& name, Domain** out) {
  if (unavailable_) {
    return Status::Error(ErrorCode::kHypervisorUnavailable,
                         "Cannot recv data: Connection reset by peer", kVirErrNoConnect);
  }
  *out = FindLocked(name);
  if (*out == nullptr) {
    return Status::Error(ErrorCode::kDomainNotFound,
                         "Domain not found: no domain with matching name '" + name + "'",
                         kVirErrNoDomain);
  }
  return Status::Ok();
}

Status FakeHypervisor::CheckRunningLocked(const std::string& name, Domain** out) {
  Domain* d = nullptr;
  if (Status reachable = CheckReachableLocked(name, &d); !reachable.ok()) return reachable;
  if (d->spec.state != DomainState::kRunning) {
    return Status::Error(ErrorCode::kDomainNotRunning, "domain is not running",
                         kVirErrOperationInvalid);
  }
  *out = d;
  return Status::Ok();
}

Result<DomainObservation> FakeHypervisor::Observe(const std::string& domain) {
  std::chrono::microseconds latency;
  {
    MutexLock lock(mu_);
    latency = observe_latency_;
  }
  SleepFor(latency);
  MutexLock lock(mu_);
  Domain* d = nullptr;
  if (Status reachable = CheckReachableLocked(domain, &d); !reachable.ok()) return reachable;
  return ObserveLocked(*d);
}

Status FakeHypervisor::SetVcpu(const std::string& domain, unsigned id, bool enable, bool persist) {
  std::chrono::microseconds latency;
  {
    MutexLock lock(mu_);
    latency = set_vcpu_latency_;
    ++set_vcpu_calls_;
  }
  SleepFor(latency);
  std::string vanished;
  Status result;
  {
    MutexLock lock(mu_);
    Domain* d = nullptr;
    if (Status s = CheckRunningLocked(domain, &d); !s.ok()) return s;
    if (id >= d->vcpus.size()) {
      return Status::Error(ErrorCode::kOperationInvalid,
                           "invalid argument: vcpu " + std::to_string(id) + " is not present",
                           kVirErrInvalidArg);
    }
    if (std::optional<Status> fault = TakeFault(d->vcpu_faults, id)) return *fault;
    VcpuInfo& v = d->vcpus[id];
    if (!v.hotpluggable && !enable) {
      return Status::Error(
          ErrorCode::kOperationInvalid,
          "Operation not supported: vcpu '" + std::to_string(id) + "' can't be unplugged",
          kVirErrOperationUnsupported);
    }
    if (enable && !VcpuPlugIsSafe(d->spec.tcg, d->unplugged, id, PresentInQemu(*d, v))) {
      return RefuseVcpuPlug(domain, id, d->unplugged);
    }
    if (!enable && d->pending_unplugs.count(id) != 0 && d->spec.tcg) {
      return Status::Error(ErrorCode::kInternal, "An error occurred, but the cause is unknown",
                           kVirErrInternal);
    }
    if (v.enabled == enable) {
      return Status::Error(
          ErrorCode::kOperationInvalid,
          "invalid argument: vcpu " + std::to_string(id) + " is already in the requested state",
          kVirErrInvalidArg);
    }
    bool config = persist && d->spec.persistent;
    if (!enable && d->unplug_times_out) {
      d->pending_unplugs.insert(id);
      if (d->spec.tcg) {
        v.present_in_qemu = false;  // QEMU removed it; libvirt never hears
        d->guest_online.erase(id);
        d->unplugged.insert(id);  // for as long as this QEMU process lives
      } else {
        v.present_in_qemu = true;  // the guest has not let go yet
      }
      return Status::Error(ErrorCode::kTimeout, "vcpu unplug request timed out",
                           kVirErrOperationTimeout);
    }
    v.enabled = enable;
    v.order = enable ? d->next_order++ : 0;
    if (enable && !d->spec.guest_agent) d->guest_online.insert(id);
    if (!enable) d->guest_online.erase(id);
    if (config) d->persistent_vcpus += enable ? 1 : -1;
    calls_.push_back({domain, id, enable, config, v.pin});
    if (d->vanish_after_calls > 0 && --d->vanish_after_calls == 0) {
      domains_.erase(domain);
      vanished = domain;
    }
  }
  if (!vanished.empty()) Fire(vanished);
  return result;
}

Status FakeHypervisor::PinVcpu(const std::string& domain, unsigned id,
                               const std::vector<unsigned>& host_cpus, bool persist) {
  (void)persist;
  MutexLock lock(mu_);
  Domain* d = nullptr;
  if (Status s = CheckRunningLocked(domain, &d); !s.ok()) return s;
  if (id >= d->vcpus.size()) {
    return Status::Error(ErrorCode::kOperationInvalid,
                         "invalid argument: vcpu " + std::to_string(id) +
                             " is out of range of live cpu count " +
                             std::to_string(d->vcpus.size()),
                         kVirErrInvalidArg);
  }
  if (std::optional<Status> fault = TakeFault(d->pin_faults, id)) return *fault;
  if (host_cpus.empty()) {
    return Status::Error(ErrorCode::kOperationInvalid, "Empty cpu list for pinning",
                         kVirErrInvalidArg);
  }
  for (unsigned cpu : host_cpus) {
    if (d->spec.host_cpus != 0 && cpu >= d->spec.host_cpus) {
      return Status::Error(
          ErrorCode::kOperationInvalid,
          "invalid argument: Invalid cpuset: host CPU " + std::to_string(cpu) + " does not exist",
          kVirErrInvalidArg);
    }
  }
  d->vcpus[id].pin = host_cpus;
  return Status::Ok();
}

Status FakeHypervisor::OnlineGuestVcpus(const std::string& domain,
                                        const std::vector<unsigned>& ids) {
  MutexLock lock(mu_);
  Domain* d = nullptr;
  if (Status s = CheckRunningLocked(domain, &d); !s.ok()) return s;
  if (!d->spec.guest_agent) {
    return Status::Error(ErrorCode::kGuestAgentUnavailable,
                         "argument unsupported: QEMU guest agent is not configured",
                         kVirErrAgentUnavailable);
  }
  for (unsigned id : ids) d->guest_online.insert(id);
  return Status::Ok();
}

Status FakeHypervisor::ApplyMemoryStep(const std::string& domain, const MemoryStep& step,
                                       bool persist) {
  (void)persist;
  MutexLock lock(mu_);
  Domain* d = nullptr;
  if (Status s = CheckRunningLocked(domain, &d); !s.ok()) return s;
  auto& devices = d->memory.devices;
  const bool dimm =
      step.op == MemoryStep::Op::kAttachDimm || step.op == MemoryStep::Op::kDetachDimm;
  if (dimm && !DimmChangeIsSafe(d->spec.tcg, d->unplugged)) {
    return RefuseDimmChange(domain, step.op, d->unplugged);
  }
  switch (step.op) {
    case MemoryStep::Op::kAttachDimm: {
      unsigned dimms = static_cast<unsigned>(std::count_if(
          devices.begin(), devices.end(),
          [](const MemoryDevice& m) { return m.model == MemoryDevice::Model::kDimm; }));
      if (dimms >= d->memory.slots) {
        return Status::Error(ErrorCode::kOperationInvalid, "no free memory device slot available",
                             kVirErrOperationInvalid);
      }
      MemoryDevice dev;
      dev.alias = "dimm" + std::to_string(d->next_dimm++);
      dev.model = MemoryDevice::Model::kDimm;
      dev.size_bytes = dev.current_bytes = step.bytes;
      dev.node = step.node;
      devices.push_back(dev);
      return Status::Ok();
    }
    case MemoryStep::Op::kDetachDimm: {
      auto it = std::find_if(devices.begin(), devices.end(),
                             [&](const MemoryDevice& m) { return m.alias == step.alias; });
      if (it == devices.end()) {
        return Status::Error(ErrorCode::kOperationInvalid,
                             "device not found: model 'dimm' alias '" + step.alias + "'",
                             kVirErrOperationInvalid);
      }
      devices.erase(it);
      return Status::Ok();
    }
    case MemoryStep::Op::kSetVirtioMemRequested: {
      for (auto& dev : devices) {
        if (dev.alias != step.alias) continue;
        if (step.bytes > dev.size_bytes) {
          return Status::Error(ErrorCode::kOperationInvalid,
                               "requested size must be smaller than or equal to @size",
                               kVirErrInvalidArg);
        }
        dev.requested_bytes = dev.current_bytes = step.bytes;
        return Status::Ok();
      }
      return Status::Error(ErrorCode::kOperationInvalid, "no virtio-mem device " + step.alias,
                           kVirErrOperationInvalid);
    }
    case MemoryStep::Op::kSetBalloon:
      if (step.bytes > d->memory.boot_bytes) {
        return Status::Error(ErrorCode::kOperationInvalid,
                             "invalid argument: cannot set memory higher than max memory",
                             kVirErrInvalidArg);
      }
      d->balloon_bytes = step.bytes;
      return Status::Ok();
  }
  return Status::Error(ErrorCode::kInternal, "unknown memory step");
}

Result<DomainClaim> FakeHypervisor::ClaimDomain(const std::string& domain, const DomainClaim& claim,
                                                const std::optional<DomainClaim>& replacing) {
  DomainClaim owner;
  {
    MutexLock lock(mu_);
    Domain* d = nullptr;
    if (Status reachable = CheckReachableLocked(domain, &d); !reachable.ok()) return reachable;
    const bool free =
        !d->claim || d->claim->SameOwner(claim) || (replacing && d->claim->SameOwner(*replacing));
    if (!free) return *d->claim;
    if (d->claim == claim) return claim;
    d->claim = claim;
    owner = claim;
  }
  // No event: as the libvirt backend, which does not deliver the metadata-change event of a
  // claim it wrote itself (backends/libvirt/domain_events.h).
  return owner;
}

Status FakeHypervisor::ReleaseDomain(const std::string& domain, const DomainClaim& claim) {
  {
    MutexLock lock(mu_);
    if (unavailable_) {
      return Status::Error(ErrorCode::kHypervisorUnavailable,
                           "Cannot recv data: Connection reset by peer", kVirErrNoConnect);
    }
    Domain* d = FindLocked(domain);
    if (d == nullptr || !d->claim || !d->claim->SameOwner(claim)) return Status::Ok();
    d->claim.reset();
  }
  Fire(domain);
  return Status::Ok();
}

void FakeHypervisor::SetEventSink(DomainEventSink sink) {
  MutexLock lock(mu_);
  sink_ = std::move(sink);
}

void FakeHypervisor::Fire(const std::string& name) {
  DomainEventSink sink;
  {
    MutexLock lock(mu_);
    sink = sink_;
  }
  if (sink) sink(name);
}

}  // namespace hotplug::backends::fake

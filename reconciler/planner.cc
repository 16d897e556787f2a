#include "reconciler/planner.h"

#include <algorithm>

#include "backends/range_list.h"
#include "backends/tcg_replug.h"
#include "crd/quantity.h"
#include "reconciler/topology.h"

namespace hotplug::reconciler {

using backends::FormatRangeList;

using backends::DomainObservation;
using crd::MemoryMethod;
using Model = backends::MemoryDevice::Model;
using backends::MemoryStep;
using backends::VcpuInfo;

VcpuView ViewVcpus(const DomainObservation& domain, const std::vector<unsigned>& pending_hint) {
  VcpuView view;
  for (const VcpuInfo& v : domain.vcpus) {
    if (!backends::VcpuPlugIsSafe(domain, v)) view.replug_unsafe.push_back(v.id);
    if (!v.enabled) continue;
    view.enabled.push_back(v.id);
    if (v.present_in_qemu == false) {
      view.stale.push_back(v.id);
    } else if (std::find(pending_hint.begin(), pending_hint.end(), v.id) != pending_hint.end()) {
      view.pending.push_back(v.id);
    } else {
      view.effective.push_back(v.id);
    }
  }
  return view;
}

void ReleaseWantedPending(VcpuView& view, int64_t desired) {
  if (view.pending.empty()) return;
  if (desired < static_cast<int64_t>(view.effective.size() + view.pending.size())) return;
  view.effective.insert(view.effective.end(), view.pending.begin(), view.pending.end());
  std::sort(view.effective.begin(), view.effective.end());
  view.pending.clear();
}

namespace {

bool Contains(const std::vector<unsigned>& ids, unsigned id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// One core as the planner sees it.
struct CoreState {
  unsigned core = 0;
  std::vector<unsigned> effective;  // its threads that are plugged (and not leaving)
  std::vector<unsigned> missing;    // the others
  bool completable = true;          // every missing thread can be plugged now
  bool removable = true;            // every effective thread can be unplugged
  unsigned last_order = 0;          // highest plug order among its effective threads
  bool whole() const { return missing.empty(); }
  bool empty() const { return effective.empty(); }
};

std::vector<CoreState> CoresOf(const DomainObservation& domain, const VcpuView& view,
                               const CpuTopology& topology) {
  std::vector<CoreState> cores;
  for (unsigned core = 0; core < topology.cores(); ++core) {
    CoreState state;
    state.core = core;
    for (unsigned id : topology.ThreadsOf(core)) {
      const VcpuInfo& v = domain.vcpus[id];
      if (Contains(view.effective, id)) {
        state.effective.push_back(id);
        state.removable = state.removable && id != 0 && v.hotpluggable;
        state.last_order = std::max(state.last_order, v.order);
      } else {
        state.missing.push_back(id);
        state.completable = state.completable && !v.enabled && v.hotpluggable &&
                            backends::VcpuPlugIsSafe(domain, v);
      }
    }
    cores.push_back(std::move(state));
  }
  return cores;
}

// The unplugs of `cores` (already in order), each core's threads highest order first.
void Unplug(const DomainObservation& domain, const std::vector<const CoreState*>& cores,
            VcpuPlan& plan) {
  for (const CoreState* core : cores) {
    std::vector<unsigned> ids = core->effective;
    std::sort(ids.begin(), ids.end(), [&](unsigned a, unsigned b) {
      const unsigned oa = domain.vcpus[a].order, ob = domain.vcpus[b].order;
      return oa != ob ? oa > ob : a > b;
    });
    plan.unplug_cores.push_back(std::move(ids));
  }
}

// More cores than wanted: the ones to unplug, half cores first (those that cannot be
// completed before those that can), then the last plugged. False when too few can go.
bool PickCoresToRemove(const std::vector<CoreState>& cores, size_t count,
                       std::vector<const CoreState*>& removed) {
  std::vector<const CoreState*> candidates;
  for (const CoreState& core : cores) {
    if (!core.empty() && core.removable) candidates.push_back(&core);
  }
  auto rank = [](const CoreState* core) { return core->whole() ? 2 : core->completable ? 1 : 0; };
  std::sort(candidates.begin(), candidates.end(), [&](const CoreState* a, const CoreState* b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return a->last_order != b->last_order ? a->last_order > b->last_order : a->core > b->core;
  });
  if (candidates.size() < count) return false;
  removed.assign(candidates.begin(), candidates.begin() + static_cast<long>(count));
  return true;
}

void ExplainShortfall(const VcpuView& view, VcpuPlan& plan) {
  if (plan.shortfall == 0) return;
  if (!view.pending.empty()) {
    plan.shortfall_why = {Reason::kUnplugPending, "waiting for the guest to release vCPU " +
                                                      FormatRangeList(view.pending) +
                                                      " before more vCPUs can be plugged"};
  } else if (!view.replug_unsafe.empty()) {
    plan.shortfall_why = {
        Reason::kReplugRefused,
        "plugging vCPU " + FormatRangeList(view.replug_unsafe) +
            " is refused: a vCPU was unplugged earlier in this QEMU process, and under TCG "
            "(software emulation) QEMU crashes on the next plug; restart the domain to grow "
            "it"};
  } else {
    plan.shortfall_why = {Reason::kExceedsMaximum, "no free hotpluggable core left"};
  }
}

// The steps that leave `target` whole cores: surplus cores unplugged, the half cores kept
// completed, free cores plugged for what is still missing.
void PlanCores(const DomainObservation& domain, const VcpuView& view, const CpuTopology& topology,
               size_t target, VcpuPlan& plan) {
  std::vector<CoreState> cores = CoresOf(domain, view, topology);
  size_t occupied = 0;
  for (const CoreState& core : cores) occupied += core.empty() ? 0 : 1;
  std::vector<const CoreState*> removed;
  if (occupied > target) {
    if (!PickCoresToRemove(cores, occupied - target, removed)) {
      size_t removable = 0;
      for (const CoreState& core : cores) removable += !core.empty() && core.removable;
      plan.blocked = {Reason::kBelowMinimum,
                      "only " + std::to_string(removable * topology.threads()) +
                          " of the enabled vCPUs can be unplugged (vCPU 0, the boot vCPUs and "
                          "their cores stay)"};
      return;
    }
    Unplug(domain, removed, plan);
  }
  for (const CoreState& core : cores) {  // the half cores that stay are completed
    if (core.empty() || core.whole()) continue;
    if (std::find(removed.begin(), removed.end(), &core) != removed.end()) continue;
    if (core.completable) {
      plan.plug_cores.push_back(core.missing);
    } else {
      plan.shortfall += static_cast<unsigned>(core.missing.size());
    }
  }
  for (const CoreState& core : cores) {  // then free cores, lowest first
    if (occupied >= target) break;
    if (!core.empty() || !core.completable) continue;
    plan.plug_cores.push_back(core.missing);
    ++occupied;
  }
  plan.shortfall +=
      static_cast<unsigned>((target - std::min(target, occupied)) * topology.threads());
  ExplainShortfall(view, plan);
}

// What the host or the domain cannot give, whatever the vCPUs' state: nullopt when none.
std::optional<Verdict> CheckDesiredVcpus(const DomainObservation& domain,
                                         const CpuTopology& topology, int64_t desired,
                                         const std::string& asked) {
  if (desired < 1) {
    return Verdict{Reason::kBelowMinimum,
                   asked + "; a running domain needs at least 1 vCPU (vCPU 0 is never unplugged)"};
  }
  if (desired > domain.maximum_vcpus) {
    return Verdict{Reason::kExceedsMaximum,
                   asked + " but domain " + domain.name + " has a maximum of " +
                       std::to_string(domain.maximum_vcpus) +
                       " vCPUs (<vcpu> in its XML); ask for fewer, or raise the maximum and "
                       "restart the domain"};
  }
  if (domain.host_max_vcpus != 0 && desired > domain.host_max_vcpus) {
    return Verdict{Reason::kHostLimit, asked + " but this host allows at most " +
                                           std::to_string(domain.host_max_vcpus) +
                                           " vCPUs per domain"};
  }
  const auto threads = static_cast<int64_t>(topology.threads());
  if (desired % threads != 0) {
    const int64_t lower = desired / threads * threads;
    const std::string choices = lower > 0 ? std::to_string(lower) + " or " : std::string();
    return Verdict{Reason::kTopologyMismatch,
                   asked + " but domain " + domain.name + " has " + std::to_string(threads) +
                       " threads per core (" + topology.Describe() +
                       "), and vCPUs are plugged and unplugged by whole cores so that the guest "
                       "never has half a core: ask for a multiple of " +
                       std::to_string(threads) + " (" + choices + std::to_string(lower + threads) +
                       ")"};
  }
  return std::nullopt;
}

}  // namespace

VcpuPlan PlanVcpuSteps(const DomainObservation& domain, const VcpuView& view, int64_t desired,
                       const std::string& asked_text) {
  VcpuPlan plan;
  const std::string asked =
      asked_text.empty() ? "spec.cpu.vcpus is " + std::to_string(desired) : asked_text;
  const CpuTopology topology(domain);
  plan.blocked = CheckDesiredVcpus(domain, topology, desired, asked);
  if (plan.blocked) return plan;
  const auto threads = static_cast<int64_t>(topology.threads());
  PlanCores(domain, view, topology, static_cast<size_t>(desired / threads), plan);
  if (plan.blocked) {
    plan.unplug_cores.clear();
    plan.plug_cores.clear();
  }
  for (const auto& core : plan.plug_cores)
    plan.plug.insert(plan.plug.end(), core.begin(), core.end());
  for (const auto& core : plan.unplug_cores) {
    plan.unplug.insert(plan.unplug.end(), core.begin(), core.end());
  }
  return plan;
}

namespace {

std::string Bytes(uint64_t bytes) { return crd::FormatBytes(bytes); }

// What `auto` means: the domain's virtio-mem device, else DIMM slots, else the balloon.
MemoryMethod ChooseMethod(const DomainObservation& domain, MemoryMethod requested) {
  if (requested != MemoryMethod::kAuto) return requested;
  for (const auto& dev : domain.memory.devices) {
    if (dev.model == Model::kVirtioMem) return MemoryMethod::kVirtioMem;
  }
  return domain.memory.slots > 0 ? MemoryMethod::kDimm : MemoryMethod::kBalloon;
}

void Block(MemoryPlan& plan, Reason why, std::string message) {
  plan.blocked = Verdict{why, std::move(message)};
}

void PlanVirtioMem(const DomainObservation& domain, const crd::MemorySpec& spec, MemoryPlan& plan) {
  const backends::MemoryDevice* dev = nullptr;
  for (const auto& d : domain.memory.devices) {
    if (d.model == Model::kVirtioMem) dev = &d;
  }
  if (dev == nullptr) {
    return Block(
        plan, Reason::kMemoryUnsupported,
        "spec.memory.method is virtio-mem but domain " + domain.name + " has no virtio-mem device");
  }
  const uint64_t base = domain.memory.current_bytes - dev->current_bytes;
  plan.maximum_bytes = base + dev->size_bytes;
  if (plan.desired_bytes < base || plan.desired_bytes > plan.maximum_bytes) {
    return Block(plan, Reason::kExceedsMaximum,
                 "spec.memory.size is " + Bytes(plan.desired_bytes) + " but virtio-mem can give " +
                     domain.name + " between " + Bytes(base) + " and " + Bytes(plan.maximum_bytes));
  }
  const uint64_t target = plan.desired_bytes - base;
  const uint64_t block = dev->block_bytes != 0 ? dev->block_bytes : kGuestBlockBytes;
  if (target % block != 0) {
    return Block(plan, Reason::kBlockMisaligned,
                 "spec.memory.size must be the boot memory (" + Bytes(base) +
                     ") plus a multiple of the virtio-mem block (" + Bytes(block) + ")");
  }
  if (target < dev->requested_bytes && !spec.allow_shrink) {
    return Block(plan, Reason::kShrinkNotAllowed,
                 "shrinking memory from " + Bytes(domain.memory.current_bytes) + " to " +
                     Bytes(plan.desired_bytes) + " needs spec.memory.allowShrink: true");
  }
  if (target != dev->requested_bytes) {
    uint64_t next = target;
    if (target < dev->requested_bytes) {  // shrink one guest block at a time
      next =
          std::max(target, dev->requested_bytes - std::min(dev->requested_bytes, kGuestBlockBytes));
    }
    plan.step = MemoryStep{MemoryStep::Op::kSetVirtioMemRequested, dev->alias, next, dev->node};
  } else if (dev->current_bytes != dev->requested_bytes) {
    plan.settling = true;
  }
}

void PlanDimm(const DomainObservation& domain, const crd::MemorySpec& spec, MemoryPlan& plan) {
  const uint64_t current = domain.memory.current_bytes;
  plan.maximum_bytes = domain.memory.maximum_bytes;
  if (domain.memory.slots == 0) {
    return Block(plan, Reason::kMemoryUnsupported,
                 "domain " + domain.name +
                     " has no memory slots (<maxMemory slots=...>); DIMM hotplug is impossible");
  }
  if (plan.desired_bytes > plan.maximum_bytes) {
    return Block(plan, Reason::kExceedsMaximum,
                 "spec.memory.size is " + Bytes(plan.desired_bytes) + " but domain " + domain.name +
                     " has a maximum of " + Bytes(plan.maximum_bytes));
  }
  if (plan.desired_bytes > current) {
    uint64_t delta = plan.desired_bytes - current;
    if (delta % kGuestBlockBytes != 0) {
      return Block(plan, Reason::kBlockMisaligned,
                   "memory can only grow by multiples of the guest's 128Mi block; " + Bytes(delta) +
                       " is not one");
    }
    unsigned dimms = 0;
    for (const auto& d : domain.memory.devices) dimms += d.model == Model::kDimm;
    if (dimms >= domain.memory.slots) {
      return Block(plan, Reason::kHostLimit,
                   "all " + std::to_string(domain.memory.slots) + " memory slots are in use");
    }
    plan.step = MemoryStep{MemoryStep::Op::kAttachDimm, "", delta, 0};
  } else if (plan.desired_bytes < current) {
    if (!spec.allow_shrink) {
      return Block(plan, Reason::kShrinkNotAllowed,
                   "shrinking memory from " + Bytes(current) + " to " + Bytes(plan.desired_bytes) +
                       " needs spec.memory.allowShrink: true");
    }
    // Remove the newest module that fits in the excess, one per pass.
    const uint64_t excess = current - plan.desired_bytes;
    for (auto it = domain.memory.devices.rbegin(); it != domain.memory.devices.rend(); ++it) {
      if (it->model == Model::kDimm && it->size_bytes <= excess) {
        plan.step = MemoryStep{MemoryStep::Op::kDetachDimm, it->alias, it->size_bytes, it->node};
        return;
      }
    }
    return Block(plan, Reason::kBlockMisaligned,
                 "no DIMM module fits in the " + Bytes(excess) +
                     " to remove; memory shrinks by whole modules");
  }
}

void PlanBalloon(const DomainObservation& domain, const crd::MemorySpec& spec, uint64_t floor_bytes,
                 MemoryPlan& plan) {
  const uint64_t current = domain.memory.current_bytes;
  plan.maximum_bytes = domain.memory.boot_bytes;
  if (plan.desired_bytes > plan.maximum_bytes) {
    return Block(plan, Reason::kExceedsMaximum,
                 "the balloon can give domain " + domain.name + " at most its boot memory, " +
                     Bytes(plan.maximum_bytes) + "; spec.memory.size is " +
                     Bytes(plan.desired_bytes));
  }
  if (plan.desired_bytes < floor_bytes) {
    return Block(plan, Reason::kMemoryFloor,
                 "spec.memory.size " + Bytes(plan.desired_bytes) + " is below the balloon floor " +
                     Bytes(floor_bytes) + "; a guest ballooned that far can panic");
  }
  if (plan.desired_bytes < current && !spec.allow_shrink) {
    return Block(plan, Reason::kShrinkNotAllowed,
                 "shrinking memory from " + Bytes(current) + " to " + Bytes(plan.desired_bytes) +
                     " needs spec.memory.allowShrink: true");
  }
  if (plan.desired_bytes != current) {
    plan.step = MemoryStep{MemoryStep::Op::kSetBalloon, "", plan.desired_bytes, 0};
  }
}

}  // namespace

MemoryPlan PlanMemoryStep(const DomainObservation& domain, const crd::MemorySpec& spec,
                          bool vcpu_unplug_pending, uint64_t balloon_floor_bytes) {
  MemoryPlan plan;
  plan.method = ChooseMethod(domain, spec.method);
  plan.desired_bytes = static_cast<uint64_t>(spec.size->Value());
  switch (plan.method) {
    case MemoryMethod::kVirtioMem:
      PlanVirtioMem(domain, spec, plan);
      break;
    case MemoryMethod::kDimm:
      PlanDimm(domain, spec, plan);
      break;
    default:
      PlanBalloon(domain, spec, balloon_floor_bytes, plan);
      break;
  }
  const bool shrinking = plan.step && (plan.step->op == MemoryStep::Op::kDetachDimm ||
                                       plan.desired_bytes < domain.memory.current_bytes);
  if (shrinking && vcpu_unplug_pending) {
    plan.step.reset();
    Block(plan, Reason::kUnplugPending,
          "memory is not shrunk while a vCPU unplug is pending (QEMU has crashed on that mix)");
  }
  return plan;
}

void RefuseVcpuUnplugTheGuestCannotDo(const GuestOs& guest, const DomainObservation& domain,
                                      size_t enabled, VcpuPlan& plan) {
  if (plan.blocked || plan.unplug.empty() || guest.capabilities->vcpu_unplug) return;
  plan.blocked = {Reason::kUnplugUnsupportedByGuest,
                  "domain " + domain.name + " runs " + guest.Describe() + ": " +
                      guest.capabilities->why + "; ask for at least the " +
                      std::to_string(enabled) +
                      " vCPUs it has, or lower <vcpu current> in its definition and reboot it "
                      "(set spec.guest.os if the OS is not what the domain says)"};
  plan.plug.clear();
  plan.unplug.clear();
  plan.plug_cores.clear();
  plan.unplug_cores.clear();
}

void RefuseDimmUnplugTheGuestCannotDo(const GuestOs& guest, const DomainObservation& domain,
                                      MemoryPlan& plan) {
  if (plan.blocked || !plan.step || plan.step->op != MemoryStep::Op::kDetachDimm ||
      guest.capabilities->dimm_unplug) {
    return;
  }
  plan.step.reset();
  Block(plan, Reason::kUnplugUnsupportedByGuest,
        "domain " + domain.name + " runs " + guest.Describe() + ": " + guest.capabilities->why +
            "; its DIMMs stay until it is rebooted with less memory");
}

}  // namespace hotplug::reconciler

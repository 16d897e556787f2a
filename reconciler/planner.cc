#include "reconciler/planner.h"

#include <algorithm>

#include "backends/range_list.h"
#include "backends/tcg_replug.h"
#include "crd/quantity.h"

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

// What the host or the domain cannot give, whatever the vCPUs' state: nullopt when none.
std::optional<Verdict> CheckDesiredVcpus(const DomainObservation& domain, int64_t desired) {
  const std::string wanted = "spec.cpu.vcpus is " + std::to_string(desired);
  if (desired < 1) {
    return Verdict{Reason::kBelowMinimum,
                   wanted + "; a running domain needs at least 1 vCPU (vCPU 0 is never unplugged)"};
  }
  if (desired > domain.maximum_vcpus) {
    return Verdict{Reason::kExceedsMaximum,
                   wanted + " but domain " + domain.name + " has a maximum of " +
                       std::to_string(domain.maximum_vcpus) +
                       " vCPUs (<vcpu> in its XML); lower spec.cpu.vcpus, or raise the maximum "
                       "and restart the domain"};
  }
  if (domain.host_max_vcpus != 0 && desired > domain.host_max_vcpus) {
    return Verdict{Reason::kHostLimit, wanted + " but this host allows at most " +
                                           std::to_string(domain.host_max_vcpus) +
                                           " vCPUs per domain"};
  }
  const unsigned threads = domain.topology.threads;
  if (threads > 1 && desired % threads != 0) {
    return Verdict{Reason::kTopologyMismatch,
                   "domain " + domain.name + " has " + std::to_string(threads) +
                       " threads per core, so vCPUs come and go by whole cores; ask for a "
                       "multiple of " +
                       std::to_string(threads)};
  }
  return std::nullopt;
}

// Grow: the lowest-numbered free slots that are safe to plug; why there are not enough.
void PlanGrow(const DomainObservation& domain, const VcpuView& view, size_t needed,
              VcpuPlan& plan) {
  for (const VcpuInfo& v : domain.vcpus) {
    if (plan.plug.size() == needed) break;
    if (!v.enabled && v.hotpluggable && backends::VcpuPlugIsSafe(domain, v)) {
      plan.plug.push_back(v.id);
    }
  }
  plan.shortfall = static_cast<unsigned>(needed - plan.plug.size());
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
            "(software emulation) QEMU crashes on the next plug; restart the domain to grow it"};
  } else {
    plan.shortfall_why = {Reason::kExceedsMaximum, "no free hotpluggable vCPU slot left"};
  }
}

// Shrink: last plugged, first unplugged; never vCPU 0 or a non-hotpluggable one.
void PlanShrink(const DomainObservation& domain, const VcpuView& view, size_t excess,
                VcpuPlan& plan) {
  std::vector<const VcpuInfo*> candidates;
  for (unsigned id : view.effective) {
    const VcpuInfo& v = domain.vcpus[id];
    if (v.id != 0 && v.hotpluggable) candidates.push_back(&v);
  }
  std::sort(candidates.begin(), candidates.end(), [](const VcpuInfo* a, const VcpuInfo* b) {
    return a->order != b->order ? a->order > b->order : a->id > b->id;
  });
  for (size_t i = 0; i < candidates.size() && plan.unplug.size() < excess; ++i) {
    plan.unplug.push_back(candidates[i]->id);
  }
  if (plan.unplug.size() < excess) {
    plan.blocked = {Reason::kBelowMinimum, "only " + std::to_string(candidates.size()) +
                                               " of the enabled vCPUs can be unplugged (vCPU 0 "
                                               "and non-hotpluggable vCPUs stay)"};
    plan.unplug.clear();
  }
}

}  // namespace

VcpuPlan PlanVcpuSteps(const DomainObservation& domain, const VcpuView& view, int64_t desired) {
  VcpuPlan plan;
  plan.blocked = CheckDesiredVcpus(domain, desired);
  if (plan.blocked) return plan;
  const auto current = static_cast<int64_t>(view.effective.size());
  if (desired > current) PlanGrow(domain, view, static_cast<size_t>(desired - current), plan);
  if (desired < current) PlanShrink(domain, view, static_cast<size_t>(current - desired), plan);
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

}  // namespace hotplug::reconciler

#include "reconciler/planner.h"

#include <algorithm>
#include <map>
#include <set>

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
  int cell = -1;                    // the NUMA cell of its first thread; -1: none
  bool whole() const { return missing.empty(); }
  bool empty() const { return effective.empty(); }
};

// The NUMA cell of each vCPU id that is in one.
std::map<unsigned, int> CellOfVcpu(const DomainObservation& domain) {
  std::map<unsigned, int> cells;
  for (const auto& cell : domain.numa_cells) {
    for (unsigned id : cell.vcpus) cells.emplace(id, static_cast<int>(cell.id));
  }
  return cells;
}

std::vector<CoreState> CoresOf(const DomainObservation& domain, const VcpuView& view,
                               const CpuTopology& topology) {
  const std::map<unsigned, int> cell_of = CellOfVcpu(domain);
  std::vector<CoreState> cores;
  for (unsigned core = 0; core < topology.cores(); ++core) {
    CoreState state;
    state.core = core;
    if (auto cell = cell_of.find(core * topology.threads()); cell != cell_of.end()) {
      state.cell = cell->second;
    }
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

// Enabled vCPUs per NUMA cell (-1: outside any).
std::map<int, size_t> PluggedPerCell(const std::vector<CoreState>& cores) {
  std::map<int, size_t> plugged;
  for (const CoreState& core : cores) plugged[core.cell] += core.effective.size();
  return plugged;
}

// More cores than wanted: the ones to unplug, half cores first (those that cannot be
// completed before those that can), then whole cores in the reverse of how they are plugged:
// from the NUMA cell with the most enabled vCPUs, the last plugged core first. False when too
// few can go.
bool PickCoresToRemove(const std::vector<CoreState>& cores, size_t count,
                       std::vector<const CoreState*>& removed) {
  std::vector<const CoreState*> halves, wholes;
  for (const CoreState& core : cores) {
    if (core.empty() || !core.removable) continue;
    (core.whole() ? wholes : halves).push_back(&core);
  }
  if (halves.size() + wholes.size() < count) return false;
  auto later = [](const CoreState* a, const CoreState* b) {
    return a->last_order != b->last_order ? a->last_order > b->last_order : a->core > b->core;
  };
  std::sort(halves.begin(), halves.end(), [&](const CoreState* a, const CoreState* b) {
    if (a->completable != b->completable) return !a->completable;
    return later(a, b);
  });
  for (const CoreState* half : halves) {
    if (removed.size() < count) removed.push_back(half);
  }
  std::map<int, size_t> plugged = PluggedPerCell(cores);
  for (const CoreState* half : removed) plugged[half->cell] -= half->effective.size();
  while (removed.size() < count) {
    auto next =
        std::min_element(wholes.begin(), wholes.end(), [&](const CoreState* a, const CoreState* b) {
          if (plugged[a->cell] != plugged[b->cell]) return plugged[a->cell] > plugged[b->cell];
          return later(a, b);
        });
    removed.push_back(*next);
    plugged[(*next)->cell] -= (*next)->effective.size();
    wholes.erase(next);
  }
  return true;
}

// Free cores for `count` more, round-robin over the NUMA cells: each time from the cell with
// the fewest enabled vCPUs (counting those planned), the lowest cell and core first.
std::vector<const CoreState*> PickFreeCores(const std::vector<CoreState>& cores, size_t count,
                                            const std::vector<std::vector<unsigned>>& completing) {
  std::map<int, size_t> plugged = PluggedPerCell(cores);
  for (const auto& ids : completing) {
    for (const CoreState& core : cores) {
      if (!core.missing.empty() && core.missing.front() == ids.front()) {
        plugged[core.cell] += ids.size();
      }
    }
  }
  std::vector<const CoreState*> free;
  for (const CoreState& core : cores) {
    if (core.empty() && core.completable) free.push_back(&core);
  }
  std::vector<const CoreState*> picked;
  while (picked.size() < count && !free.empty()) {
    auto next =
        std::min_element(free.begin(), free.end(), [&](const CoreState* a, const CoreState* b) {
          if (plugged[a->cell] != plugged[b->cell]) return plugged[a->cell] < plugged[b->cell];
          return a->cell != b->cell ? a->cell < b->cell : a->core < b->core;
        });
    picked.push_back(*next);
    plugged[(*next)->cell] += (*next)->missing.size();
    free.erase(next);
  }
  return picked;
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
  if (occupied < target) {  // then free cores, round-robin over the NUMA cells
    for (const CoreState* core : PickFreeCores(cores, target - occupied, plan.plug_cores)) {
      plan.plug_cores.push_back(core->missing);
      ++occupied;
    }
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

// openEuler: CPU hot-plug into a domain whose NUMA cells split one socket's vCPUs made guests
// soft-lock and panic.
std::optional<Verdict> SocketSplitAcrossCells(const DomainObservation& domain,
                                              const CpuTopology& topology) {
  if (!topology.given() || domain.numa_cells.size() < 2) return std::nullopt;
  const std::map<unsigned, int> cell_of = CellOfVcpu(domain);
  std::map<unsigned, std::set<int>> cells_of_socket;
  for (const auto& [id, cell] : cell_of) cells_of_socket[topology.SocketOf(id)].insert(cell);
  for (const auto& [socket, cells] : cells_of_socket) {
    if (cells.size() < 2) continue;
    std::vector<unsigned> ids, cell_ids;
    for (unsigned id = socket * topology.vcpus_per_socket();
         id < (socket + 1) * topology.vcpus_per_socket(); ++id) {
      ids.push_back(id);
    }
    for (int cell : cells) cell_ids.push_back(static_cast<unsigned>(cell));
    return Verdict{Reason::kNumaSplitsSocket,
                   "domain " + domain.name + "'s NUMA cells split socket " +
                       std::to_string(socket) + " (vCPU " + FormatRangeList(ids) +
                       ") across cells " + FormatRangeList(cell_ids) +
                       ": openEuler reports soft lockups and panics after CPU hot-plug in that "
                       "layout, so vCPUs are not changed; put each socket's vCPUs in one "
                       "<numa><cell>"};
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
  if (!plan.blocked && (!plan.plug_cores.empty() || !plan.unplug_cores.empty())) {
    if (auto split = SocketSplitAcrossCells(domain, topology)) plan.blocked = split;
  }
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

// Where a new DIMM goes: spec.memory.numaNode, else the NUMA cell with the least memory, the
// lowest on a tie; 0 without NUMA. nullopt (the plan blocked) for a cell the domain lacks.
std::optional<int> DimmNode(const DomainObservation& domain, const crd::MemorySpec& spec,
                            MemoryPlan& plan) {
  const std::map<unsigned, uint64_t> memory = MemoryPerCell(domain);
  if (spec.numa_node) {
    if (memory.empty() && *spec.numa_node == 0) return 0;
    if (!memory.count(static_cast<unsigned>(*spec.numa_node))) {
      std::vector<unsigned> cells;
      for (const auto& [cell, bytes] : memory) cells.push_back(cell);
      Block(plan, Reason::kTopologyMismatch,
            "spec.memory.numaNode is " + std::to_string(*spec.numa_node) + " but domain " +
                domain.name + " has NUMA cell " +
                (cells.empty() ? "0 only (no <numa>)" : FormatRangeList(cells)));
      return std::nullopt;
    }
    return static_cast<int>(*spec.numa_node);
  }
  if (memory.empty()) return 0;
  auto least = std::min_element(memory.begin(), memory.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second < b.second : a.first < b.first;
  });
  return static_cast<int>(least->first);
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
    const std::optional<int> node = DimmNode(domain, spec, plan);
    if (!node) return;
    plan.step = MemoryStep{MemoryStep::Op::kAttachDimm, "", delta, *node};
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

std::map<unsigned, uint64_t> MemoryPerCell(const DomainObservation& domain) {
  std::map<unsigned, uint64_t> memory;
  for (const auto& cell : domain.numa_cells) memory[cell.id] = cell.memory_bytes;
  for (const auto& device : domain.memory.devices) {
    if (device.node >= 0 && memory.count(static_cast<unsigned>(device.node))) {
      memory[static_cast<unsigned>(device.node)] += device.current_bytes;
    }
  }
  return memory;
}

}  // namespace hotplug::reconciler

// Planning: from what the hypervisor says now and what the spec asks, the list of
// single-vCPU steps (or the one memory step) to take next, or the reason none can be taken.
// Pure functions: no I/O, no clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backends/hypervisor.h"
#include "crd/elasticvm.h"
#include "reconciler/reasons.h"

namespace hotplug::reconciler {

// The domain's vCPUs, sorted into what matters for planning.
struct VcpuView {
  std::vector<unsigned> enabled;        // libvirt says enabled
  std::vector<unsigned> effective;      // enabled, really in QEMU, and not being unplugged
  std::vector<unsigned> stale;          // libvirt says enabled, QEMU removed it (TCG unplug)
  std::vector<unsigned> pending;        // unplug requested, the guest has not let go yet
  std::vector<unsigned> replug_unsafe;  // plugging them may crash QEMU (backends/tcg_replug.h)
};

// `pending_hint` lists vCPUs whose unplug an earlier pass requested (from the last status);
// those still present in the domain are pending, the rest are forgotten.
VcpuView ViewVcpus(const backends::DomainObservation& domain,
                   const std::vector<unsigned>& pending_hint);

// An unplug request is waited for only while the spec still wants that vCPU gone. When
// `desired` keeps every vCPU QEMU still has (effective + pending), the pending ones count as
// plugged again and are no longer reported pending. If the guest releases one after all,
// the device-removed event (or the resync) brings a pass that plugs a vCPU back. This also
// heals a hint that a lost status write left stale: a vCPU whose unplug completed and which
// was plugged again by a pass whose status never reached the API.
void ReleaseWantedPending(VcpuView& view, int64_t desired);

// Why nothing (more) can be done: the condition's reason and a message a person can act on.
struct Verdict {
  Reason reason;
  std::string message;
};

struct VcpuPlan {
  // Set when nothing may be changed.
  std::optional<Verdict> blocked;
  std::vector<unsigned> plug;    // lowest id first
  std::vector<unsigned> unplug;  // highest plug order first
  // vCPUs still missing after `plug`, and why (set when shortfall > 0): waiting for pending
  // unplugs, or only replug-unsafe slots left.
  unsigned shortfall = 0;
  std::optional<Verdict> shortfall_why;
};

VcpuPlan PlanVcpuSteps(const backends::DomainObservation& domain, const VcpuView& view,
                       int64_t desired);

struct MemoryPlan {
  std::optional<Verdict> blocked;                          // set: nothing may be changed
  crd::MemoryMethod method = crd::MemoryMethod::kBalloon;  // never kAuto: the one chosen
  uint64_t desired_bytes = 0;
  uint64_t maximum_bytes = 0;                // the most this method can reach
  std::optional<backends::MemoryStep> step;  // the next step, if any
  bool settling = false;  // the device was asked; the guest has not caught up yet
};

// The guest's memory block: sizes must be multiples of it (x86: 128 MiB).
inline constexpr uint64_t kGuestBlockBytes = 128ull << 20;

MemoryPlan PlanMemoryStep(const backends::DomainObservation& domain, const crd::MemorySpec& spec,
                          bool vcpu_unplug_pending, uint64_t balloon_floor_bytes);

}  // namespace hotplug::reconciler

// Planning: from what the hypervisor says now and what the spec asks, the list of
// single-vCPU steps (or the one memory step) to take next, or the reason none can be taken.
// Pure functions: no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/hypervisor.h"
#include "crd/elasticvm.h"
#include "reconciler/guest_os.h"
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

// vCPUs come and go by whole cores (reconciler/topology.h): all threads of a core in
// consecutive calls, so that a finished pass never leaves the guest half a core. With one
// thread per core a core is one vCPU.
struct VcpuPlan {
  // Set when nothing may be changed.
  std::optional<Verdict> blocked;
  // The steps, core by core, in call order. Plugs: half-plugged cores completed first, then
  // free cores, lowest first, each core's threads lowest id first. Unplugs: half cores first,
  // then the last plugged core (highest plug order), each core's threads highest order first.
  std::vector<std::vector<unsigned>> plug_cores;
  std::vector<std::vector<unsigned>> unplug_cores;
  std::vector<unsigned> plug;    // plug_cores, one after another
  std::vector<unsigned> unplug;  // unplug_cores, one after another
  // vCPUs still missing after `plug`, and why (set when shortfall > 0): waiting for pending
  // unplugs, or only replug-unsafe slots left.
  unsigned shortfall = 0;
  std::optional<Verdict> shortfall_why;
};

// `asked` says in words where `desired` came from, for messages ("spec.cpu.sockets is 2 (8
// vCPUs)"); empty: "spec.cpu.vcpus is <desired>".
VcpuPlan PlanVcpuSteps(const backends::DomainObservation& domain, const VcpuView& view,
                       int64_t desired, const std::string& asked = "");

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

// Memory per guest NUMA cell, by cell id: its boot memory plus the memory devices on it. Empty
// without NUMA.
std::map<unsigned, uint64_t> MemoryPerCell(const backends::DomainObservation& domain);

// A plan that takes from the guest what its OS cannot give back (Windows: vCPUs and DIMMs
// only at a reboot) is refused with UnplugUnsupportedByGuest, instead of asking the guest and
// waiting out libvirt's timeout.
void RefuseVcpuUnplugTheGuestCannotDo(const GuestOs& guest,
                                      const backends::DomainObservation& domain, size_t enabled,
                                      VcpuPlan& plan);
void RefuseDimmUnplugTheGuestCannotDo(const GuestOs& guest,
                                      const backends::DomainObservation& domain, MemoryPlan& plan);

}  // namespace hotplug::reconciler

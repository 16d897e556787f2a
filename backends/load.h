// The guest's load as the hypervisor measures it: cumulative busy time per vCPU and the
// balloon driver's memory statistics. What reconciler/autoscale.h turns into a vCPU count or
// a memory size; read by Hypervisor::ReadLoad, one call per sample.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace hotplug::backends {

// One vCPU's time since its thread started: on a host CPU (libvirt's vcpu.<n>.time) and
// runnable but waiting for one (vcpu.<n>.delay, the guest's steal time). Their sum is what the guest asked for: on a
// busy host the wait is the part of the guest's demand the host could not serve.
struct VcpuTime {
  unsigned id = 0;
  uint64_t busy_ns = 0;
  uint64_t wait_ns = 0;
};

// virDomainMemoryStats as the guest's balloon driver reports it (bytes; nullopt = not given).
struct MemoryLoad {
  std::optional<uint64_t> available_bytes;    // memory the guest can use (MemTotal)
  std::optional<uint64_t> usable_bytes;       // what it could use without swapping (MemAvailable)
  std::optional<uint64_t> unused_bytes;       // left completely unused (MemFree)
  std::optional<uint64_t> disk_caches_bytes;  // page cache that can be reclaimed
  std::optional<uint64_t> balloon_bytes;      // the balloon's current size (actual)
};

struct LoadSample {
  std::vector<VcpuTime> vcpus;  // the vCPUs running now, by id
  // Set when the balloon driver answers with stats. `stats_period_set` says this read turned
  // the stats period on (it was 0), so the numbers start with the next sample.
  std::optional<MemoryLoad> memory;
  bool stats_period_set = false;
};

}  // namespace hotplug::backends

// An in-memory hypervisor holding many domains, for reconciler tests, integration tests of
// the controller and benchmarks. Thread-safe. Behaves like libvirt + QEMU as measured on a
// real host (design notes in docs/architecture.md): the <vcpus> map with enabled /
// hotpluggable / order, vCPU 0 never unpluggable, "already in requested state" errors,
// the owner's claim kept in the domain, and scripted faults: a failing vCPU, an unplug that times
// out and completes later, a domain that vanishes mid-plan, a migration, a guest agent that does
// not answer, per-call latency.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/hypervisor.h"
#include "common/thread_annotations.h"

namespace hotplug::backends::fake {

struct DomainSpec {
  std::string name;
  unsigned maximum_vcpus = 4;
  unsigned current_vcpus = 1;
  bool persistent = true;
  bool tcg = false;  // TCG: unplugs time out, and after one no plug is safe (tcg_replug.h)
  DomainState state = DomainState::kRunning;
  bool guest_agent = false;
  uint64_t boot_memory_bytes = 1ull << 30;
  uint64_t maximum_memory_bytes = 4ull << 30;
  unsigned memory_slots = 0;           // DIMM slots; 0 = no DIMM hotplug
  uint64_t virtio_mem_size_bytes = 0;  // 0 = no virtio-mem device
  uint64_t virtio_mem_block_bytes = 2ull << 20;
  unsigned host_max_vcpus = 0;  // 0 = unknown
  // <cpu><topology>; all 0: none given (one vCPU per socket). sockets x dies x cores x threads
  // should be maximum_vcpus, as libvirt requires.
  Topology topology{};
  // The vCPUs enabled at start other than vCPU 0 are hotpluggable, as when the domain XML's
  // <vcpus> says so; false: as libvirt makes them by default, started with -smp and fixed.
  bool boot_vcpus_hotpluggable = true;
  std::string guest_os{};  // the libosinfo id in the domain's metadata, "" for none
  std::map<unsigned, std::vector<unsigned>> pins{};  // <cputune><vcpupin>, by vCPU id
  std::vector<unsigned> default_cpuset{};            // <vcpu cpuset>
  unsigned host_cpus = 0;                            // the host's CPUs; 0 = unknown
  std::vector<NumaCell> numa_cells{};                // <cpu><numa>; empty: none
};

// What a scripted fault does to the call it hits.
struct Fault {
  ErrorCode code = ErrorCode::kInternal;
  std::string message = "injected fault";
  int native_code = 1;
  int remaining = 1;  // how many calls it affects; -1 = until cleared
};

class FakeHypervisor final : public Hypervisor {
 public:
  FakeHypervisor() = default;

  // --- set-up and fault injection (tests) ---
  void AddDomain(const DomainSpec& spec);
  void RemoveDomain(const std::string& name);  // the domain vanishes
  void SetState(const std::string& name, DomainState state);
  void SetJob(const std::string& name, JobKind job);
  void SetGuestAgent(const std::string& name, bool available);
  // Each call (Observe, SetVcpu, ...) sleeps this long first: a realistic slow hypervisor.
  void SetLatency(std::chrono::microseconds observe, std::chrono::microseconds set_vcpu);
  // The next SetVcpu of vCPU `id` (either direction) fails with `fault`.
  void FailVcpu(const std::string& name, unsigned id, Fault fault);
  // The next PinVcpu of vCPU `id` fails with `fault`.
  void FailPinVcpu(const std::string& name, unsigned id, Fault fault);
  // Every unplug of this domain times out (kTimeout) and stays pending until
  // CompletePendingUnplugs, which removes the vCPUs and fires the event sink.
  void SetUnplugTimesOut(const std::string& name, bool times_out);
  void CompletePendingUnplugs(const std::string& name);
  // After `calls` more successful SetVcpu calls on this domain, it vanishes.
  void VanishAfterCalls(const std::string& name, int calls);
  // The hypervisor connection fails every call while set.
  void SetUnavailable(bool unavailable);
  void ClearFaults();
  // Scriptable load (fake_load.cc): from now on the guest keeps `busy_cpus` vCPUs' worth of
  // its running vCPUs busy (spread evenly, at most all of them), as ReadLoad reports it.
  void SetLoad(const std::string& name, double busy_cpus);
  // What ReadLoad reports as the balloon's memory stats; nullopt: the guest has none.
  void SetMemoryLoad(const std::string& name, std::optional<MemoryLoad> memory);
  // The time the load accrues by; steady_clock when not set (tests pass their FakeClock's).
  void SetLoadClock(std::function<std::chrono::steady_clock::time_point()> now);

  // --- inspection (tests) ---
  // Every SetVcpu that reached the domain and changed it, in order: {id, enable}.
  struct Call {
    std::string domain;
    unsigned id;
    bool enable;
    bool persist;
    std::vector<unsigned> pin;  // the vCPU's own pin when the call was made
  };
  std::vector<Call> SuccessfulCalls() const;
  size_t SetVcpuCallCount() const;  // every SetVcpu call, failed ones included
  std::optional<DomainObservation> Peek(const std::string& name) const;
  // Enabled vCPUs in the persistent (inactive) definition.
  std::optional<unsigned> PersistentVcpus(const std::string& name) const;

  // --- Hypervisor ---
  Result<DomainObservation> Observe(const std::string& domain) override;
  Status SetVcpu(const std::string& domain, unsigned id, bool enable, bool persist) override;
  Status PinVcpu(const std::string& domain, unsigned id, const std::vector<unsigned>& host_cpus,
                 bool persist) override;
  Status OnlineGuestVcpus(const std::string& domain, const std::vector<unsigned>& ids) override;
  Status ApplyMemoryStep(const std::string& domain, const MemoryStep& step, bool persist) override;
  Result<DomainClaim> ClaimDomain(const std::string& domain, const DomainClaim& claim,
                                  const std::optional<DomainClaim>& replacing) override;
  Status ReleaseDomain(const std::string& domain, const DomainClaim& claim) override;
  void SetEventSink(DomainEventSink sink) override;
  Result<LoadSample> ReadLoad(const std::string& domain) override;

 private:
  struct Domain {
    DomainSpec spec;
    std::vector<VcpuInfo> vcpus;
    unsigned next_order = 1;
    unsigned persistent_vcpus = 0;
    JobKind job = JobKind::kNone;
    bool unplug_times_out = false;
    std::set<unsigned> pending_unplugs;
    std::set<unsigned> unplugged;  // TCG: unplugged in this "QEMU process"
    std::map<unsigned, Fault> vcpu_faults;
    std::map<unsigned, Fault> pin_faults;
    int vanish_after_calls = -1;
    std::set<unsigned> guest_online;
    MemoryInfo memory;
    uint64_t balloon_bytes = 0;
    unsigned next_dimm = 0;
    std::optional<DomainClaim> claim;  // kept, like libvirt's metadata, in the domain
    // The scripted load (fake_load.cc).
    double load_cpus = 0.0;
    std::optional<std::chrono::steady_clock::time_point> load_since;
    std::map<unsigned, uint64_t> busy_ns;  // per vCPU
    std::optional<MemoryLoad> memory_load;
  };

  Domain* FindLocked(const std::string& name) REQUIRES(mu_);
  const Domain* FindLocked(const std::string& name) const REQUIRES(mu_);
  DomainObservation ObserveLocked(const Domain& domain) const REQUIRES(mu_);
  static std::optional<bool> PresentInQemu(const Domain& domain, const VcpuInfo& vcpu);
  // The hypervisor answers and knows the domain (kHypervisorUnavailable, kDomainNotFound).
  Status CheckReachableLocked(const std::string& name, Domain** out) REQUIRES(mu_);
  // ... and the domain runs (kDomainNotRunning).
  Status CheckRunningLocked(const std::string& name, Domain** out) REQUIRES(mu_);
  void Fire(const std::string& name);
  void AccrueLoadLocked(Domain& domain) REQUIRES(mu_);

  mutable Mutex mu_;
  std::map<std::string, Domain> domains_ GUARDED_BY(mu_);
  std::vector<Call> calls_ GUARDED_BY(mu_);
  size_t set_vcpu_calls_ GUARDED_BY(mu_) = 0;
  bool unavailable_ GUARDED_BY(mu_) = false;
  std::chrono::microseconds observe_latency_ GUARDED_BY(mu_){0};
  std::chrono::microseconds set_vcpu_latency_ GUARDED_BY(mu_){0};
  DomainEventSink sink_ GUARDED_BY(mu_);
  std::function<std::chrono::steady_clock::time_point()> load_clock_ GUARDED_BY(mu_);
};

}  // namespace hotplug::backends::fake

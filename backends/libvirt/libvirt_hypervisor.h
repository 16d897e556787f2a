// The Hypervisor over libvirt's C API (qemu:///system by default): observes a domain in one
// call, changes one vCPU or one memory step per call, reports domain events. It is the only
// code that includes libvirt; this header does not, so users need no libvirt headers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backends/hypervisor.h"

namespace hotplug::backends::libvirt {

struct LibvirtOptions {
  std::string uri = "qemu:///system";
  int keepalive_interval_s = 5;
  unsigned keepalive_count = 3;
  // After the connection is lost, reopen on the next call, then wait this long between
  // failed attempts, doubling up to the cap.
  std::chrono::milliseconds reconnect_initial_backoff{100};
  std::chrono::milliseconds reconnect_max_backoff{5000};
  // Read QEMU's own vCPU list (virDomainQemuMonitorCommand) in every Observe of a TCG
  // domain. It marks the domain "custom-monitor" tainted in libvirt's log.
  bool read_qemu_vcpus_on_tcg = true;
  // Time for the reconnect backoff; steady_clock when empty.
  std::function<std::chrono::steady_clock::time_point()> now;
};

// Threading: all methods may be called from any thread at once. The connection is guarded by
// one mutex (held only to fetch or reopen it; calls run on a shared reference), the TCG
// unplug record by a second one (read-modify-write of the domain metadata), the owner's
// claim by a third (read-check-write); the event sink
// by the events' own mutex. Events arrive on the "libvirt-events" thread, which the
// destructor stops and joins (when this is the last backend in the process).
class LibvirtHypervisor final : public Hypervisor {
 public:
  explicit LibvirtHypervisor(LibvirtOptions options = {});
  ~LibvirtHypervisor() override;
  LibvirtHypervisor(const LibvirtHypervisor&) = delete;
  LibvirtHypervisor& operator=(const LibvirtHypervisor&) = delete;

  Result<DomainObservation> Observe(const std::string& domain) override;

  // Refuses (kUnsupported, without calling libvirt) a plug that backends/tcg_replug.h calls
  // unsafe: on a TCG domain once a vCPU was unplugged in the same QEMU process. Observe
  // reports the vCPUs recorded as unplugged (DomainObservation::unplugged_vcpus). After an
  // unplug times out, the message also says what QEMU itself reports for that vCPU.
  Status SetVcpu(const std::string& domain, unsigned id, bool enable, bool persist) override;
  // virDomainPinVcpuFlags: live (a disabled vCPU's pin is applied when it is plugged) and,
  // with `persist`, in the persistent definition.
  Status PinVcpu(const std::string& domain, unsigned id, const std::vector<unsigned>& host_cpus,
                 bool persist) override;
  Status OnlineGuestVcpus(const std::string& domain, const std::vector<unsigned>& ids) override;
  // DIMM attach/detach that backends/tcg_replug.h calls unsafe is refused (kUnsupported).
  Status ApplyMemoryStep(const std::string& domain, const MemoryStep& step, bool persist) override;
  // The claim is the element <claim> of namespace https://hotplug.dev/xmlns/owner in the
  // domain's metadata (backends/libvirt/owner_claim.h), live and persistent.
  Result<DomainClaim> ClaimDomain(const std::string& domain, const DomainClaim& claim,
                                  const std::optional<DomainClaim>& replacing) override;
  Status ReleaseDomain(const std::string& domain, const DomainClaim& claim) override;
  void SetEventSink(DomainEventSink sink) override;
  // Per-vCPU time (bulk stats) and the balloon's memory stats (backends/libvirt/load_stats.h).
  Result<LoadSample> ReadLoad(const std::string& domain) override;

  // The vCPUs recorded as unplugged in the domain's current QEMU process (TCG only).
  Result<std::set<unsigned>> UnpluggedVcpus(const std::string& domain);

  // QEMU's own vCPU ids ("query-cpus-fast" through the monitor).
  Result<std::set<unsigned>> QemuVcpus(const std::string& domain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hotplug::backends::libvirt

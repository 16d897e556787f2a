#include "backends/tcg_replug.h"

#include "backends/range_list.h"

namespace hotplug::backends {
namespace {

std::string Ids(const std::set<unsigned>& ids) { return FormatRangeList({ids.begin(), ids.end()}); }

}  // namespace

bool VcpuPlugIsSafe(bool tcg, const std::set<unsigned>& unplugged, unsigned id,
                    std::optional<bool> present_in_qemu) {
  if (!tcg || unplugged.empty()) return true;
  // A vCPU QEMU still has is not plugged by anyone; every other one is unsafe.
  return unplugged.count(id) == 0 && present_in_qemu.value_or(false);
}

bool VcpuPlugIsSafe(const DomainObservation& domain, const VcpuInfo& vcpu) {
  return VcpuPlugIsSafe(domain.tcg, domain.unplugged_vcpus, vcpu.id, vcpu.present_in_qemu);
}

bool DimmChangeIsSafe(bool tcg, const std::set<unsigned>& unplugged) {
  return !tcg || unplugged.empty();
}

Status RefuseVcpuPlug(const std::string& domain, unsigned id, const std::set<unsigned>& unplugged) {
  return Status::Error(
      ErrorCode::kUnsupported,
      "refusing to plug vCPU " + std::to_string(id) + " of '" + domain + "': vCPU " +
          Ids(unplugged) +
          " was unplugged earlier in this QEMU process, and under TCG QEMU crashes on a vCPU "
          "plug after an unplug (QEMU 7.2: heap corruption on the next plug of any vCPU; QEMU "
          "10.0: tcg_register_thread assertion when the same vCPU is plugged again); vCPUs can "
          "be plugged again once the domain is restarted");
}

Status RefuseDimmChange(const std::string& domain, MemoryStep::Op op,
                        const std::set<unsigned>& unplugged) {
  return Status::Error(
      ErrorCode::kUnsupported,
      std::string("refusing to ") +
          (op == MemoryStep::Op::kAttachDimm ? "attach a DIMM to" : "detach a DIMM from") + " '" +
          domain + "': vCPU " + Ids(unplugged) +
          " was unplugged in this QEMU process, and QEMU 7.2 under TCG corrupted its heap and "
          "died on the next DIMM change after that; use virtio-mem, or restart the domain first");
}

}  // namespace hotplug::backends

// What the e2e suites share: the skip check, a backend per test, vCPU helpers over an
// observation, and a stopwatch.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "backends/hypervisor.h"
#include "backends/tcg_replug.h"
#include "backends/libvirt/libvirt_hypervisor.h"
#include "tests/e2e/guest.h"

namespace hotplug::e2e {

using backends::DomainObservation;
using backends::ErrorCode;
using backends::VcpuInfo;

inline unsigned EnabledCount(const DomainObservation& observation) {
  unsigned count = 0;
  for (const VcpuInfo& vcpu : observation.vcpus) count += vcpu.enabled ? 1 : 0;
  return count;
}

// The lowest disabled, hotpluggable vCPU that was never unplugged in this QEMU process.
inline std::optional<unsigned> FreshVcpu(const DomainObservation& observation) {
  for (const VcpuInfo& vcpu : observation.vcpus) {
    if (!vcpu.enabled && vcpu.hotpluggable && backends::VcpuPlugIsSafe(observation, vcpu) &&
        vcpu.present_in_qemu.value_or(false) == false) {
      return vcpu.id;
    }
  }
  return std::nullopt;
}

inline double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Prints a measured figure in one greppable line: "[measure] name value unit".
inline void Measure(const std::string& name, double value, const char* unit) {
  std::printf("[measure] %s %.3f %s\n", name.c_str(), value, unit);
  std::fflush(stdout);
}

inline std::string DomainStateOf(const std::string& name) {
  CommandResult state = Virsh({"domstate", name});
  std::string text = state.output;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace hotplug::e2e

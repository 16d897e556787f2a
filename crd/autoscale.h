// The autoscale parts of the ElasticVM API: spec.cpu.autoscale and spec.memory.autoscale.
// When set they decide the desired vCPU count / memory size from the guest's own load
// (reconciler/autoscale.h); spec.cpu.vcpus and spec.memory.size are then only the start.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>

#include "crd/quantity.h"

namespace hotplug::crd {

// Recommend: write status.*.recommended and change nothing (the dry run). Auto: act on it.
enum class AutoscaleMode { kRecommend, kAuto };
inline constexpr const char* kAutoscaleModeNames[] = {"Recommend", "Auto"};
static_assert(std::size(kAutoscaleModeNames) == static_cast<size_t>(AutoscaleMode::kAuto) + 1);
inline const char* AutoscaleModeName(AutoscaleMode value) {
  return kAutoscaleModeNames[static_cast<size_t>(value)];
}

// The HPA's defaults: a scale-up waits 30 s of agreeing recommendations, a scale-down 5 min.
inline constexpr std::chrono::milliseconds kDefaultScaleUpWindow{30'000};
inline constexpr std::chrono::milliseconds kDefaultScaleDownWindow{300'000};
inline constexpr int64_t kDefaultCpuScaleUpStep = 4;
inline constexpr int64_t kDefaultCpuScaleDownStep = 1;

// How one direction of change is damped. The window is spelled as a duration ("30s", "5m").
struct ScalingRules {
  std::chrono::milliseconds stabilization_window{0};
  int64_t max_step = 1;  // vCPUs per decision; for memory, blocks per decision
  friend bool operator==(const ScalingRules&, const ScalingRules&) = default;
};

struct CpuAutoscale {
  AutoscaleMode mode = AutoscaleMode::kRecommend;
  int64_t min_vcpus = 1;
  int64_t max_vcpus = 0;           // required: > 0 once decoded
  int64_t target_utilization = 0;  // percent of the enabled vCPUs' time, 1..100; required
  ScalingRules scale_up{kDefaultScaleUpWindow, kDefaultCpuScaleUpStep};
  ScalingRules scale_down{kDefaultScaleDownWindow, kDefaultCpuScaleDownStep};
  friend bool operator==(const CpuAutoscale&, const CpuAutoscale&) = default;
};

// What the guest should keep available: a percentage of its memory or an amount.
struct MemoryTarget {
  std::optional<int64_t> percent;  // 1..99
  std::optional<Quantity> amount;  // bytes, when not a percentage
};

struct MemoryAutoscale {
  AutoscaleMode mode = AutoscaleMode::kRecommend;
  std::optional<Quantity> min;  // required
  std::optional<Quantity> max;  // required
  MemoryTarget target_available;
  // Below the current size is recommended always, acted on only with this (like
  // spec.memory.allowShrink, which Auto also needs).
  bool allow_shrink = false;
  ScalingRules scale_up{kDefaultScaleUpWindow, 4};
  ScalingRules scale_down{kDefaultScaleDownWindow, 1};
};

// "1h2m3s", "30s", "500ms" (Go's time.Duration spelling, without fractions or "us"/"ns").
// nullopt when `text` is not such a duration or is above a day.
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text);
std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace hotplug::crd

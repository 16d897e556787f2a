// The autoscale decision, pure like the planner: from the load the guest showed over the
// last samples, how many vCPUs (or how much memory) it should have. The Kubernetes HPA's
// rule: desired = ceil(current x utilisation / target) outside a +-10 % tolerance, separate
// up and down stabilisation windows (the lowest recommendation in the up window, the highest
// in the down window wins), a bounded step, clamped to the bounds. No I/O, no clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

#include "crd/autoscale.h"

namespace hotplug::reconciler {

// The HPA's tolerance: a utilisation within 10 % of the target changes nothing.
inline constexpr double kAutoscaleTolerance = 0.10;

using MonoTime = std::chrono::steady_clock::time_point;

// One raw recommendation, kept while a stabilisation window may still need it.
struct TimedRecommendation {
  MonoTime at;
  int64_t value = 0;
};
using RecommendationHistory = std::deque<TimedRecommendation>;

// The HPA rule on its own. `load` is the measured use in the unit of `current` (busy vCPUs,
// used memory blocks); `target` the share of `current` it should be (0 < target <= 1).
// Within the tolerance the answer is `current`.
int64_t HpaRecommendation(int64_t current, double load, double target);

// Records `raw` at `now`, forgets what no window needs, and returns the stabilised count:
// the lowest recommendation of the up window when that is above `current`, the highest of
// the down window when that is below, else `current`.
int64_t Stabilize(RecommendationHistory& history, MonoTime now, int64_t raw, int64_t current,
                  std::chrono::milliseconds up_window, std::chrono::milliseconds down_window);

// What bounded the decision, for the Event and the condition.
enum class Limit { kNone, kStep, kMinimum, kMaximum, kDomainMaximum, kGuestCannotUnplug };
const char* LimitName(Limit limit);

struct Bounds {
  int64_t minimum = 1;
  int64_t maximum = 1;
  int64_t domain_maximum = 0;  // 0 = unknown; otherwise caps `maximum`
  // Decisions move by this many (vCPUs: the threads of one core, so that the guest never
  // has half a core): the answer, the steps and the bounds are whole multiples of it.
  int64_t unit = 1;
  // Never below this, even above the maximum (0: no floor): what a guest that cannot
  // unplug has.
  int64_t floor = 0;
};

struct Decision {
  int64_t raw = 0;          // the HPA rule's answer
  int64_t stabilized = 0;   // after the windows
  int64_t desired = 0;      // after the step and the bounds: what is recommended
  Limit limit = Limit::kNone;
};

// The step (at most up.max_step above / down.max_step below `current`, at least one unit),
// then the bounds, in whole units: the stabilised count is rounded up to a unit (enough for
// the load), the minimum up, the maximum down (unless that is none).
Decision Bound(int64_t raw, int64_t stabilized, int64_t current, const crd::ScalingRules& up,
               const crd::ScalingRules& down, const Bounds& bounds);

// --- vCPUs

struct CpuLoad {
  int64_t current = 0;     // vCPUs the guest has now
  double busy_cpus = 0.0;  // vCPUs' worth of busy time over the sampling window
};

// What the domain and its guest impose on a vCPU decision.
struct VcpuLimits {
  int64_t domain_maximum = 0;        // 0 = unknown
  int64_t threads_per_core = 1;      // vCPUs come and go by whole cores
  bool guest_cannot_unplug = false;  // never below the current count
};

// spec's minVcpus/maxVcpus with `limits`, for a guest that has `current` vCPUs.
Bounds VcpuBounds(const crd::CpuAutoscale& spec, const VcpuLimits& limits, int64_t current);

// utilisation of `current` in percent (busy_cpus / current).
double UtilizationPercent(const CpuLoad& load);

Decision DecideVcpus(const crd::CpuAutoscale& spec, const CpuLoad& load, const VcpuLimits& limits,
                     RecommendationHistory& history, MonoTime now);

// --- memory, in blocks of `block_bytes` (the guest's memory block)

struct MemoryUse {
  uint64_t current_bytes = 0;    // what the domain has now
  uint64_t guest_total_bytes = 0;  // what the guest sees of it (MemTotal)
  uint64_t usable_bytes = 0;     // what the guest could still use (MemAvailable)
};

// Percent of the guest's memory still usable.
double AvailablePercent(const MemoryUse& use);

// The recommended size in bytes (whole blocks). Below the current size only when
// spec.allow_shrink; `decision.desired` is in blocks.
Decision DecideMemory(const crd::MemoryAutoscale& spec, const MemoryUse& use,
                      uint64_t block_bytes, uint64_t domain_maximum_bytes,
                      RecommendationHistory& history, MonoTime now);

}  // namespace hotplug::reconciler

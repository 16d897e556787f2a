#include "reconciler/autoscale.h"

#include <algorithm>
#include <cmath>

namespace hotplug::reconciler {

int64_t HpaRecommendation(int64_t current, double load, double target) {
  if (current <= 0 || target <= 0.0) return current;
  const double ratio = load / (static_cast<double>(current) * target);
  if (std::abs(ratio - 1.0) <= kAutoscaleTolerance) return current;
  // A hair of slack so that load == n * target (measured with rounding) gives n, not n + 1.
  return static_cast<int64_t>(std::ceil(load / target - 1e-9));
}

int64_t Stabilize(RecommendationHistory& history, MonoTime now, int64_t raw, int64_t current,
                  std::chrono::milliseconds up_window, std::chrono::milliseconds down_window) {
  const auto keep = std::max(up_window, down_window);
  while (!history.empty() && now - history.front().at > keep) history.pop_front();
  history.push_back({now, raw});
  int64_t up = raw, down = raw;  // lowest in the up window, highest in the down window
  for (const TimedRecommendation& r : history) {
    if (now - r.at <= up_window) up = std::min(up, r.value);
    if (now - r.at <= down_window) down = std::max(down, r.value);
  }
  if (up > current) return up;
  if (down < current) return down;
  return current;
}

const char* LimitName(Limit limit) {
  switch (limit) {
    case Limit::kNone: return "none";
    case Limit::kStep: return "maxStep";
    case Limit::kMinimum: return "minimum";
    case Limit::kMaximum: return "maximum";
    case Limit::kDomainMaximum: return "domain maximum";
    case Limit::kGuestCannotUnplug: return "the guest, which cannot unplug";
  }
  return "none";
}

namespace {

int64_t UnitsUp(int64_t n, int64_t unit) { return (n + unit - 1) / unit * unit; }
int64_t UnitsDown(int64_t n, int64_t unit) { return n / unit * unit; }

}  // namespace

Decision Bound(int64_t raw, int64_t stabilized, int64_t current, const crd::ScalingRules& up,
               const crd::ScalingRules& down, const Bounds& bounds) {
  const int64_t unit = std::max<int64_t>(1, bounds.unit);
  const int64_t up_step = std::max(unit, UnitsDown(up.max_step, unit));
  const int64_t down_step = std::max(unit, UnitsDown(down.max_step, unit));
  Decision d{raw, stabilized, UnitsUp(stabilized, unit), Limit::kNone};
  if (d.desired > current + up_step) {
    d = {raw, stabilized, UnitsDown(current + up_step, unit), Limit::kStep};
  }
  if (d.desired < current - down_step) {
    d = {raw, stabilized, UnitsUp(current - down_step, unit), Limit::kStep};
  }
  const bool domain_caps = bounds.domain_maximum > 0 && bounds.domain_maximum < bounds.maximum;
  int64_t maximum = domain_caps ? bounds.domain_maximum : bounds.maximum;
  if (UnitsDown(maximum, unit) > 0) maximum = UnitsDown(maximum, unit);
  if (d.desired > maximum) {
    d.desired = maximum;
    d.limit = domain_caps ? Limit::kDomainMaximum : Limit::kMaximum;
  }
  if (d.desired < bounds.minimum) {
    d.desired = std::min(UnitsUp(bounds.minimum, unit), maximum);
    d.limit = Limit::kMinimum;
  }
  if (d.desired < bounds.floor) {
    d.desired = bounds.floor;
    d.limit = Limit::kGuestCannotUnplug;
  }
  return d;
}

double UtilizationPercent(const CpuLoad& load) {
  return load.current > 0 ? 100.0 * load.busy_cpus / static_cast<double>(load.current) : 0.0;
}

Bounds VcpuBounds(const crd::CpuAutoscale& spec, const VcpuLimits& limits, int64_t current) {
  return {std::max<int64_t>(1, spec.min_vcpus), spec.max_vcpus, limits.domain_maximum,
          std::max<int64_t>(1, limits.threads_per_core),
          limits.guest_cannot_unplug ? current : 0};
}

Decision DecideVcpus(const crd::CpuAutoscale& spec, const CpuLoad& load, const VcpuLimits& limits,
                     RecommendationHistory& history, MonoTime now) {
  const double target = static_cast<double>(spec.target_utilization) / 100.0;
  const int64_t raw = HpaRecommendation(load.current, load.busy_cpus, target);
  const int64_t stabilized =
      Stabilize(history, now, raw, load.current, spec.scale_up.stabilization_window,
                spec.scale_down.stabilization_window);
  return Bound(raw, stabilized, load.current, spec.scale_up, spec.scale_down,
               VcpuBounds(spec, limits, load.current));
}

double AvailablePercent(const MemoryUse& use) {
  if (use.guest_total_bytes == 0) return 0.0;
  return 100.0 * static_cast<double>(std::min(use.usable_bytes, use.guest_total_bytes)) /
         static_cast<double>(use.guest_total_bytes);
}

namespace {

int64_t BlocksUp(uint64_t bytes, uint64_t block_bytes) {
  return static_cast<int64_t>((bytes + block_bytes - 1) / block_bytes);
}

// The used memory, and the total it should be in: used / (1 - percent) or used + amount.
double WantedGuestTotal(const crd::MemoryTarget& target, double used) {
  if (target.percent) return used / (1.0 - static_cast<double>(*target.percent) / 100.0);
  return used + static_cast<double>(target.amount ? target.amount->Value() : 0);
}

}  // namespace

Decision DecideMemory(const crd::MemoryAutoscale& spec, const MemoryUse& use,
                      uint64_t block_bytes, uint64_t domain_maximum_bytes,
                      RecommendationHistory& history, MonoTime now) {
  const int64_t current = static_cast<int64_t>(use.current_bytes / block_bytes);
  const double used = static_cast<double>(use.guest_total_bytes) -
                      static_cast<double>(std::min(use.usable_bytes, use.guest_total_bytes));
  // What the guest does not see of the domain's memory (the kernel's own) stays as it is.
  const double hidden = static_cast<double>(use.current_bytes) -
                        static_cast<double>(use.guest_total_bytes);
  const double wanted_blocks =
      (WantedGuestTotal(spec.target_available, used) + hidden) / static_cast<double>(block_bytes);
  // The HPA rule in blocks: the load is the wanted size, the target 1 (a size, not a share).
  const int64_t raw = HpaRecommendation(current, wanted_blocks, 1.0);
  const int64_t stabilized =
      Stabilize(history, now, raw, current, spec.scale_up.stabilization_window,
                spec.scale_down.stabilization_window);
  Bounds bounds{BlocksUp(static_cast<uint64_t>(spec.min ? spec.min->Value() : 0), block_bytes),
                static_cast<int64_t>(static_cast<uint64_t>(spec.max ? spec.max->Value() : 0) /
                                     block_bytes),
                static_cast<int64_t>(domain_maximum_bytes / block_bytes)};
  Decision d = Bound(raw, stabilized, current, spec.scale_up, spec.scale_down, bounds);
  if (d.desired < current && !spec.allow_shrink) d.desired = current;
  return d;
}

}  // namespace hotplug::reconciler

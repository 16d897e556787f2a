#include "reconciler/autoscaler.h"

#include <algorithm>
#include <cmath>

#include "backends/range_list.h"
#include "reconciler/conditions.h"
#include "reconciler/guest_os.h"
#include "reconciler/planner.h"
#include "reconciler/topology.h"

namespace hotplug::reconciler {
namespace {

using std::chrono::milliseconds;

// A pass that comes sooner than this after the last sample (a step left, a domain event)
// decides from the samples it has instead of taking a new one.
constexpr double kDueFraction = 0.5;

// The vCPUs the guest really has, as the last pass saw them: libvirt's enabled ones less
// those QEMU already removed (TCG) and those whose unplug is pending.
std::optional<int64_t> EffectiveVcpus(const crd::ElasticVMStatus& status) {
  if (!status.vcpus || status.vcpus->current <= 0) return std::nullopt;
  const crd::VcpuStatus& v = *status.vcpus;
  const size_t pending =
      backends::ParseRangeList(v.pending).value_or(std::vector<unsigned>{}).size();
  return std::max<int64_t>(1, v.qemu.value_or(v.current) - static_cast<int64_t>(pending));
}

// What the domain and the guest allow, as the last pass saw them.
VcpuLimits LimitsOf(const crd::ElasticVM& object) {
  const crd::ElasticVMStatus& status = object.status;
  VcpuLimits limits;
  if (status.vcpus) {
    limits.domain_maximum = status.vcpus->maximum;
    limits.threads_per_core = ThreadsPerCoreDescribed(status.vcpus->topology);
  }
  limits.guest_cannot_unplug =
      !LastKnownCapabilities(object.spec.guest.os, status.guest_os).vcpu_unplug;
  return limits;
}

std::optional<uint64_t> StatusBytes(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::optional<crd::Quantity> q = crd::Quantity::Parse(text);
  if (!q || q->IsNegative()) return std::nullopt;
  return static_cast<uint64_t>(q->Value());
}

const char* Direction(int64_t from, int64_t to) {
  return to > from ? "up" : to < from ? "down" : "none";
}

std::string LimitSuffix(Limit limit) {
  return limit == Limit::kNone ? "" : std::string(" (limited by ") + LimitName(limit) + ")";
}

// The Event of a changed recommendation: what changed and the signal that caused it.
Event ChangeEvent(crd::AutoscaleMode mode, const std::string& what) {
  return {Event::Type::kNormal,
          mode == crd::AutoscaleMode::kAuto ? kAutoscaledEvent : kAutoscaleRecommendedEvent, what};
}

}  // namespace

bool HasAutoscale(const crd::ElasticVM& object) {
  return !object.spec_error &&
         (object.spec.cpu.autoscale.has_value() || object.spec.memory.autoscale.has_value());
}

Autoscaler::Autoscaler(AutoscaleOptions options) : options_(options) {}

std::shared_ptr<Autoscaler::State> Autoscaler::StateFor(const crd::ElasticVM& object) {
  MutexLock lock(mu_);
  std::shared_ptr<State>& state = states_[object.Key()];
  if (!state) state = std::make_shared<State>();
  return state;
}

void Autoscaler::Forget(const std::string& key, Metrics* metrics) {
  size_t erased = 0;
  {
    MutexLock lock(mu_);
    erased = states_.erase(key);
  }
  // The series exist only where a Turn made a state: without one there is nothing to drop.
  if (erased > 0 && metrics != nullptr) metrics->AutoscaleForgotten(key);
}

size_t Autoscaler::Tracked() const {
  MutexLock lock(mu_);
  return states_.size();
}

AutoscaleTurn Autoscaler::Turn(const crd::ElasticVM& object, backends::Hypervisor& hypervisor,
                               const Clock& clock, Metrics& metrics) {
  AutoscaleTurn turn;
  if (!HasAutoscale(object)) return turn;
  turn.active = true;
  std::shared_ptr<State> state = StateFor(object);
  MutexLock lock(state->mu);
  ResetUnlessOf(*state, object);
  const MonoTime now = clock.Monotonic();
  const bool sampled = SampleIfDue(*state, object, hypervisor, now);
  if (object.spec.cpu.autoscale) TurnCpu(*state, object, sampled, now, turn, metrics);
  if (object.spec.memory.autoscale) TurnMemory(*state, object, sampled, now, turn, metrics);
  ConcludeCondition(*state, object, turn);
  const MonoTime next = state->ring.empty() ? now : state->ring.back().at + options_.sample_period;
  turn.next_sample =
      std::max(milliseconds{1}, std::chrono::duration_cast<milliseconds>(next - now));
  return turn;
}

void Autoscaler::ResetUnlessOf(State& state, const crd::ElasticVM& object) {
  const std::string domain = object.EffectiveDomain();
  if (state.uid == object.metadata.uid && state.domain == domain &&
      state.guest_os == object.spec.guest.os) {
    return;
  }
  // A new object under an old name, another domain or another guest: nothing of the old
  // load, recommendation or floor applies.
  state.ring.clear();
  state.load_error.clear();
  state.cpu = {};
  state.memory = {};
  state.uid = object.metadata.uid;
  state.domain = domain;
  state.guest_os = object.spec.guest.os;
}

bool Autoscaler::SampleIfDue(State& state, const crd::ElasticVM& object,
                             backends::Hypervisor& hypervisor, MonoTime now) {
  if (!state.ring.empty() &&
      now - state.ring.back().at <
          std::chrono::duration_cast<milliseconds>(options_.sample_period * kDueFraction)) {
    return false;
  }
  backends::Result<backends::LoadSample> read = hypervisor.ReadLoad(object.EffectiveDomain());
  if (!read.ok()) {
    state.load_error = read.status().message();
    state.ring.clear();  // a gap: the next rate starts afresh
    return false;
  }
  state.load_error.clear();
  state.ring.push_back({now, std::move(read.value().vcpus), read.value().memory});
  while (state.ring.size() > std::max<size_t>(2, options_.samples_kept)) state.ring.pop_front();
  return true;
}

std::optional<double> Autoscaler::DemandCpus(const State& state) const {
  if (state.ring.size() < 2) return std::nullopt;
  const Sample& newest = state.ring.back();
  const Sample* oldest = &state.ring[state.ring.size() - 2];
  for (const Sample& s : state.ring) {
    if (&s != &newest && newest.at - s.at <= options_.load_window) {
      oldest = &s;
      break;
    }
  }
  const double seconds = std::chrono::duration<double>(newest.at - oldest->at).count();
  if (seconds <= 0) return std::nullopt;
  double demand_ns = 0;
  for (const backends::VcpuTime& v : newest.vcpus) {
    uint64_t before = 0;  // a vCPU plugged since `oldest` started from 0
    for (const backends::VcpuTime& o : oldest->vcpus) {
      if (o.id == v.id && o.busy_ns + o.wait_ns <= v.busy_ns + v.wait_ns) {
        before = o.busy_ns + o.wait_ns;
      }
    }
    demand_ns += static_cast<double>(v.busy_ns + v.wait_ns - before);
  }
  // No vCPU can ask for more than all of its time.
  return std::min(demand_ns / 1e9 / seconds, static_cast<double>(newest.vcpus.size()));
}

void Autoscaler::TurnCpu(State& state, const crd::ElasticVM& object, bool sampled, MonoTime now,
                         AutoscaleTurn& turn, Metrics& metrics) {
  const crd::CpuAutoscale& spec = *object.spec.cpu.autoscale;
  const VcpuLimits limits = LimitsOf(object);
  const int64_t domain_maximum = limits.domain_maximum;
  const std::optional<int64_t> seen = EffectiveVcpus(object.status);
  Track& track = state.cpu;
  const std::optional<double> demand = sampled ? DemandCpus(state) : std::nullopt;
  const int64_t current =
      seen.value_or(state.ring.empty() ? 1 : std::max<size_t>(1, state.ring.back().vcpus.size()));
  if (demand) {
    const CpuLoad load{current, *demand};
    const Decision d = DecideVcpus(spec, load, limits, track.history, now);
    const auto percent = static_cast<int64_t>(std::lround(UtilizationPercent(load)));
    const std::string key = object.Key();
    const bool acts = spec.mode == crd::AutoscaleMode::kAuto;
    metrics.AutoscaleDecision(
        {key, "vcpu", static_cast<double>(d.desired),
         static_cast<double>(acts ? d.desired : object.spec.cpu.vcpus.value_or(current)),
         static_cast<double>(current),
         static_cast<double>(domain_maximum > 0 ? std::min(spec.max_vcpus, domain_maximum)
                                                : spec.max_vcpus),
         UtilizationPercent(load), static_cast<double>(spec.target_utilization),
         Direction(current, d.desired)});
    if (track.recommended != d.desired) {
      const std::string what = "vCPUs " + std::to_string(track.recommended.value_or(current)) +
                               " -> " + std::to_string(d.desired) + ": utilisation " +
                               std::to_string(percent) + "% of " + std::to_string(current) +
                               " vCPUs, target " + std::to_string(spec.target_utilization) + "%" +
                               LimitSuffix(d.limit);
      turn.events.push_back(ChangeEvent(spec.mode, what));
      track.recommended = d.desired;
      track.signal_percent = percent;
      track.message = "recommends " + std::to_string(d.desired) + " vCPUs: utilisation " +
                      std::to_string(percent) + "% of " + std::to_string(current) +
                      " vCPUs, target " + std::to_string(spec.target_utilization) + "%" +
                      LimitSuffix(d.limit);
      track.limit = d.limit;
    }
  }
  if (track.recommended) {
    turn.recommended_vcpus = track.recommended;
    turn.utilization = track.signal_percent;
  }
  if (spec.mode != crd::AutoscaleMode::kAuto) return;
  // Until the first recommendation: spec.cpu.vcpus (or what the guest has) within the bounds.
  const int64_t start = object.spec.cpu.vcpus.value_or(current);
  const Decision bounded = Bound(start, start, start, spec.scale_up, spec.scale_down,
                                VcpuBounds(spec, limits, current));
  turn.vcpus = track.recommended.value_or(bounded.desired);
}

void Autoscaler::TurnMemory(State& state, const crd::ElasticVM& object, bool sampled, MonoTime now,
                            AutoscaleTurn& turn, Metrics& metrics) {
  const crd::MemoryAutoscale& spec = *object.spec.memory.autoscale;
  Track& track = state.memory;
  const std::optional<uint64_t> current =
      object.status.memory ? StatusBytes(object.status.memory->current) : std::nullopt;
  const uint64_t maximum =
      object.status.memory ? StatusBytes(object.status.memory->maximum).value_or(0) : 0;
  const Sample* newest = state.ring.empty() ? nullptr : &state.ring.back();
  if (sampled && current && newest && newest->memory && newest->memory->available_bytes) {
    const uint64_t current_bytes = *current;  // a plain copy: GCC -O3 cannot follow the optional
    const backends::MemoryLoad& m = *newest->memory;
    const uint64_t usable =
        m.usable_bytes.value_or(m.unused_bytes.value_or(0) + m.disk_caches_bytes.value_or(0));
    const MemoryUse use{current_bytes, *m.available_bytes, usable};
    const Decision d = DecideMemory(spec, use, kGuestBlockBytes, maximum, track.history, now);
    const auto percent = static_cast<int64_t>(std::lround(AvailablePercent(use)));
    const auto current_blocks = static_cast<int64_t>(current_bytes / kGuestBlockBytes);
    const std::string key = object.Key();
    const double recommended = static_cast<double>(d.desired) * kGuestBlockBytes;
    const bool acts = spec.mode == crd::AutoscaleMode::kAuto;
    metrics.AutoscaleDecision(
        {key, "memory", recommended, acts ? recommended : static_cast<double>(current_bytes),
         static_cast<double>(current_bytes), static_cast<double>(spec.max ? spec.max->Value() : 0),
         AvailablePercent(use), static_cast<double>(spec.target_available.percent.value_or(0)),
         Direction(current_blocks, d.desired)});
    if (track.recommended != d.desired) {
      const std::string size =
          crd::FormatBytes(static_cast<uint64_t>(d.desired) * kGuestBlockBytes);
      turn.events.push_back(ChangeEvent(
          spec.mode, "memory " + crd::FormatBytes(current_bytes) + " -> " + size + ": " +
                         std::to_string(percent) + "% available" + LimitSuffix(d.limit)));
      track.recommended = d.desired;
      track.signal_percent = percent;
      track.message = "recommends " + size + " of memory: " + std::to_string(percent) +
                      "% available" + LimitSuffix(d.limit);
      track.limit = d.limit;
    }
  }
  if (track.recommended) {
    turn.recommended_memory =
        crd::FormatBytes(static_cast<uint64_t>(*track.recommended) * kGuestBlockBytes);
    turn.available_percent = track.signal_percent;
  }
  if (spec.mode == crd::AutoscaleMode::kAuto && track.recommended) {
    turn.memory =
        crd::Quantity::FromInt(*track.recommended * static_cast<int64_t>(kGuestBlockBytes));
  }
}

void Autoscaler::ConcludeCondition(const State& state, const crd::ElasticVM& object,
                                   AutoscaleTurn& turn) const {
  const crd::CpuAutoscale* cpu = object.spec.cpu.autoscale ? &*object.spec.cpu.autoscale : nullptr;
  const int64_t domain_maximum = object.status.vcpus ? object.status.vcpus->maximum : 0;
  const bool auto_mode = (cpu && cpu->mode == crd::AutoscaleMode::kAuto) ||
                         (object.spec.memory.autoscale &&
                          object.spec.memory.autoscale->mode == crd::AutoscaleMode::kAuto);
  turn.reason = auto_mode ? Reason::kAutoscaling : Reason::kRecommending;
  if (!state.load_error.empty()) {
    turn.ok = false;
    turn.reason = Reason::kLoadUnavailable;
    turn.message = "cannot read the guest's load: " + state.load_error;
  } else if (cpu && domain_maximum > 0 && cpu->max_vcpus > domain_maximum) {
    turn.ok = false;
    turn.reason = Reason::kAutoscaleCapped;
    turn.message = "spec.cpu.autoscale.maxVcpus is " + std::to_string(cpu->max_vcpus) +
                   " but domain " + object.EffectiveDomain() + " has at most " +
                   std::to_string(domain_maximum) + " vCPUs; recommendations stop there";
  } else {
    std::string message = state.cpu.message;
    if (!state.memory.message.empty()) {
      message += (message.empty() ? "" : "; ") + state.memory.message;
    }
    turn.message = message.empty() ? "collecting load samples" : message;
  }
}

void ApplyTurn(const AutoscaleTurn& turn, int64_t generation,
               std::chrono::system_clock::time_point now, Result& result) {
  if (!turn.active) return;
  crd::ElasticVMStatus& status = result.status;
  if (status.vcpus) {
    status.vcpus->recommended = turn.recommended_vcpus;
    status.vcpus->utilization = turn.utilization;
  }
  if (status.memory) {
    status.memory->recommended = turn.recommended_memory;
    status.memory->available_percent = turn.available_percent;
  }
  SetCondition(status.conditions, condition::kAutoscaling, turn.ok, ReasonName(turn.reason),
               turn.message, generation, now);
  result.events.insert(result.events.end(), turn.events.begin(), turn.events.end());
  if (result.requeue_after.count() == 0 || result.requeue_after > turn.next_sample) {
    result.requeue_after = turn.next_sample;
  }
}

}  // namespace hotplug::reconciler

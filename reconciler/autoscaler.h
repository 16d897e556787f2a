// The autoscaler's memory between passes: per object, a bounded ring of load samples and the
// recommendations the stabilisation windows still need. The pass itself stays a pure function
// of the object and the hypervisor; this is the one thing that must outlive it (a restart
// only costs a window of samples). The decision is reconciler/autoscale.h.
//
// Threading: one Autoscaler is shared by all workers. mu_ guards the map; each object's state
// has its own mutex (the work queue already never runs two passes of one object at once).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backends/hypervisor.h"
#include "common/thread_annotations.h"
#include "crd/elasticvm.h"
#include "reconciler/autoscale.h"
#include "reconciler/clock.h"
#include "reconciler/reasons.h"
#include "reconciler/reconciler.h"

namespace hotplug::reconciler {

namespace condition {
// True while spec.*.autoscale recommends from fresh load samples.
inline constexpr const char* kAutoscaling = "Autoscaling";
}  // namespace condition

// The Event reasons of a changed recommendation (Recommend) or desired count (Auto).
inline constexpr const char* kAutoscaleRecommendedEvent = "AutoscaleRecommended";
inline constexpr const char* kAutoscaledEvent = "Autoscaled";
inline bool IsAutoscaleEvent(std::string_view reason) {
  return reason == kAutoscaleRecommendedEvent || reason == kAutoscaledEvent;
}

struct AutoscaleOptions {
  // How often a pass of an autoscaled object samples the load (it requeues itself so).
  std::chrono::milliseconds sample_period{5'000};
  // The utilisation is the average over the newest samples spanning this long.
  std::chrono::milliseconds load_window{15'000};
  // Samples kept per object (the ring), at least enough for the load window.
  size_t samples_kept = 16;
};

// What the autoscaler decided for one pass.
struct AutoscaleTurn {
  bool active = false;                // the object has spec.cpu or spec.memory autoscale
  std::optional<int64_t> vcpus;        // Auto: the pass's desired vCPUs
  std::optional<crd::Quantity> memory;  // Auto: the pass's desired memory
  std::optional<int64_t> recommended_vcpus, utilization;
  std::string recommended_memory;
  std::optional<int64_t> available_percent;
  bool ok = true;  // the Autoscaling condition
  Reason reason = Reason::kSynced;
  std::string message;
  std::vector<Event> events;
  std::chrono::milliseconds next_sample{0};
};

class Autoscaler {
 public:
  explicit Autoscaler(AutoscaleOptions options = {});

  // Samples `object`'s domain when a sample is due and decides from the ring.
  AutoscaleTurn Turn(const crd::ElasticVM& object, backends::Hypervisor& hypervisor,
                     const Clock& clock, Metrics& metrics);

  // The object is gone, or no longer autoscaled: forget its samples, and when it had any,
  // tell `metrics` (AutoscaleForgotten). Call it where the object's passes run (a worker,
  // which never runs two of one object at once), so no pass of it is still deciding.
  void Forget(const std::string& key, Metrics* metrics = nullptr);
  size_t Tracked() const;

  const AutoscaleOptions& options() const { return options_; }

 private:
  struct Sample {
    MonoTime at;
    std::vector<backends::VcpuTime> vcpus;
    std::optional<backends::MemoryLoad> memory;
  };
  // What one resource's autoscale remembers.
  struct Track {
    RecommendationHistory history;
    std::optional<int64_t> recommended;  // vCPUs, or memory blocks
    int64_t signal_percent = 0;          // utilisation / available behind `recommended`
    std::string message;                 // the condition message, set on a change
    Limit limit = Limit::kNone;
  };
  struct State {
    Mutex mu;
    // What the samples are of: the object's uid, its domain and its guest OS as spec gives
    // it. Any change starts afresh.
    std::string uid GUARDED_BY(mu), domain GUARDED_BY(mu), guest_os GUARDED_BY(mu);
    std::deque<Sample> ring GUARDED_BY(mu);
    std::string load_error GUARDED_BY(mu);  // the last sample's failure, "" when it worked
    Track cpu GUARDED_BY(mu), memory GUARDED_BY(mu);
  };

  std::shared_ptr<State> StateFor(const crd::ElasticVM& object);
  // Clears `state` unless it is of `object`'s uid, domain and guest OS.
  static void ResetUnlessOf(State& state, const crd::ElasticVM& object) REQUIRES(state.mu);
  bool SampleIfDue(State& state, const crd::ElasticVM& object, backends::Hypervisor& hypervisor,
                   MonoTime now) REQUIRES(state.mu);
  void TurnCpu(State& state, const crd::ElasticVM& object, bool sampled, MonoTime now,
               AutoscaleTurn& turn, Metrics& metrics) REQUIRES(state.mu);
  void TurnMemory(State& state, const crd::ElasticVM& object, bool sampled, MonoTime now,
                  AutoscaleTurn& turn, Metrics& metrics) REQUIRES(state.mu);
  void ConcludeCondition(const State& state, const crd::ElasticVM& object,
                         AutoscaleTurn& turn) const REQUIRES(state.mu);
  // Busy vCPUs (time + wait per wall time) between the newest sample and the oldest one
  // within the load window; nullopt with fewer than two.
  std::optional<double> DemandCpus(const State& state) const REQUIRES(state.mu);

  const AutoscaleOptions options_;
  mutable Mutex mu_;
  // By object key.
  std::unordered_map<std::string, std::shared_ptr<State>> states_ GUARDED_BY(mu_);
};

// True when the object asks for any autoscale.
bool HasAutoscale(const crd::ElasticVM& object);

// Writes what `turn` decided into the pass's result: status.*.recommended, the Autoscaling
// condition, the Events and the requeue for the next sample.
void ApplyTurn(const AutoscaleTurn& turn, int64_t generation,
               std::chrono::system_clock::time_point now, Result& result);

}  // namespace hotplug::reconciler

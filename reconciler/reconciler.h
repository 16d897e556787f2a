// The reconcile pass: observe -> validate -> plan -> execute -> report, one vCPU per
// hypervisor call. A pure function of the object and what the hypervisor says now: it keeps
// no memory between passes, so a restart at any moment converges on the next pass.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/hypervisor.h"
#include "crd/elasticvm.h"
#include "reconciler/clock.h"
#include "reconciler/reasons.h"

namespace hotplug::reconciler {

// Condition types. Their reasons are in reconciler/reasons.h.
namespace condition {
inline constexpr const char* kReady = "Ready";
inline constexpr const char* kVcpusSynced = "VCPUsSynced";
inline constexpr const char* kMemorySynced = "MemorySynced";
}  // namespace condition

// A Kubernetes Event to record on the object (oVirt's audit log, made native).
struct Event {
  enum class Type { kNormal, kWarning };
  Type type = Type::kNormal;
  std::string reason;
  std::string message;
};

// One hypervisor call the pass made, in order. Tests use it to prove "never twice".
struct StepRecord {
  std::string resource;   // "vcpu" or "memory"
  std::string operation;  // plug, unplug, online, attach, detach, resize, balloon
  int64_t id = -1;        // vCPU id, or -1
  uint64_t bytes = 0;     // memory steps
  backends::Status result;
};

// One autoscale decision, for the metrics: values in vCPUs or bytes.
struct AutoscaleDecisionRecord {
  std::string_view key;       // namespace/name
  std::string_view resource;  // vcpu | memory
  double recommended = 0, desired = 0, current = 0, maximum = 0;
  double signal_percent = 0;  // vcpu: utilisation; memory: available
  double target_percent = 0;  // vcpu: targetUtilization; memory: targetAvailable (0: an amount)
  std::string_view direction;  // up | down | none: recommended against current
};

// Receives what a pass measured; the controller turns it into Prometheus metrics. The
// defaults do nothing, so tests and standalone tools need not care.
class Metrics {
 public:
  virtual ~Metrics() = default;
  // operation: plug | unplug | online; result: success | failure | pending.
  virtual void VcpuOperation(std::string_view operation, std::string_view result, double seconds) {
    (void)operation, (void)result, (void)seconds;
  }
  // operation: attach | detach | resize | balloon.
  virtual void MemoryOperation(std::string_view operation, std::string_view result,
                               double seconds) {
    (void)operation, (void)result, (void)seconds;
  }
  // One autoscale decision (one per load sample) of one object.
  virtual void AutoscaleDecision(const AutoscaleDecisionRecord& record) { (void)record; }
  // The object's autoscale samples are gone (it was deleted, its autoscale removed, or
  // another object owns its domain): so go its series. Called where its passes run, after
  // the last one, so never while one of them may still report a decision.
  virtual void AutoscaleForgotten(const std::string& key) { (void)key; }
};

class Autoscaler;  // reconciler/autoscaler.h

struct Options {
  // Folder of optional hook executables (before_set_vcpu, after_set_vcpu,
  // before_set_memory, after_set_memory). Empty: no hooks.
  std::string hooks_dir;
  std::chrono::milliseconds hook_timeout{30'000};
  // How many failures status.failures keeps (newest last).
  size_t max_failures = 10;
  // When to look again at an unplug the guest has not confirmed, or a stale libvirt view.
  std::chrono::milliseconds pending_requeue{2'000};
  // When to look again at a domain that is absent, stopped or migrating.
  std::chrono::milliseconds blocked_requeue{30'000};
  // Memory the balloon never goes below.
  uint64_t balloon_floor_bytes = 256ull << 20;
  // Checked between steps: when set, the pass stops after the step in flight and reports.
  const std::atomic<bool>* stop_requested = nullptr;
  // Recorded in the claims this process makes (backends::DomainClaim::manager): its
  // --node-name, or "" for the central Deployment and standalone mode.
  std::string claim_manager;
  // True when `claim` on `domain` names an owner that is gone (deleted, or pointed at
  // another domain), so another object may take the domain over. Unset: never stale.
  std::function<bool(const backends::DomainClaim& claim, const std::string& domain)> claim_is_stale;
  // Keeps spec.*.autoscale's samples between passes; shared by the workers. Null: each
  // Reconciler keeps its own.
  Autoscaler* autoscaler = nullptr;
};

struct Result {
  crd::ElasticVMStatus status;
  // An error worth retrying with backoff (a failed step, the hypervisor unreachable).
  bool requeue_with_backoff = false;
  // > 0: look again after this long even without a change (pending unplug, blocked domain).
  std::chrono::milliseconds requeue_after{0};
  std::vector<Event> events;
  std::vector<StepRecord> steps;
  // The claim this object holds on its domain after the pass; nullopt when it holds none
  // (another object owns the domain, or the pass ended before it got there).
  std::optional<backends::DomainClaim> claim;
  // The pass got to the claim (it holds `claim`, or another object owns the domain). False
  // when it ended before (an invalid spec, a domain it could not observe or claim): what the
  // object held before, it may hold still.
  bool claim_known = false;
};

class Reconciler {
 public:
  Reconciler(backends::Hypervisor& hypervisor, const Clock& clock, Options options = {},
             Metrics* metrics = nullptr);
  ~Reconciler();

  // One pass over `object` (whose status is the last one written). `on_long_pass_start` is
  // called once, before the first step, when the pass will take more than one step, so the
  // controller can publish InProgress before a long pass.
  Result Reconcile(
      const crd::ElasticVM& object,
      const std::function<void(const crd::ElasticVMStatus&)>& on_long_pass_start = nullptr);

 private:
  void ForgetAutoscale(const std::string& key, Metrics& metrics);

  backends::Hypervisor& hypervisor_;
  const Clock& clock_;
  Options options_;
  Metrics* metrics_;
  Metrics no_metrics_;
  std::unique_ptr<Autoscaler> own_autoscaler_;  // when options_.autoscaler is null
};

}  // namespace hotplug::reconciler

#include "reconciler/reconciler.h"

#include <algorithm>

#include "crd/quantity.h"
#include "reconciler/conditions.h"
#include "reconciler/cpuset.h"
#include "reconciler/hooks.h"
#include "reconciler/planner.h"

namespace hotplug::reconciler {
namespace {

using backends::DomainObservation;
using backends::ErrorCode;
using backends::Status;

std::string Millis(double seconds) {
  return std::to_string(static_cast<long long>(seconds * 1000.0 + 0.5)) + " ms";
}

// The state of one pass: what it observed, did and will report.
class Pass {
 public:
  Pass(const crd::ElasticVM& object, backends::Hypervisor& hypervisor, const Clock& clock,
       const Options& options, Metrics& metrics)
      : object_(object),
        spec_(object.spec),
        domain_(object.EffectiveDomain()),
        generation_(object.metadata.generation),
        hypervisor_(hypervisor),
        clock_(clock),
        options_(options),
        metrics_(metrics) {
    result_.status = object.status;
    result_.status.observed_generation = generation_;
  }

  Result Run(const std::function<void(const crd::ElasticVMStatus&)>& on_long_pass_start);

 private:
  bool ManagesCpu() const { return spec_.cpu.vcpus.has_value(); }
  bool ManagesMemory() const { return spec_.memory.size.has_value(); }
  bool StopRequested() const {
    return options_.stop_requested != nullptr && options_.stop_requested->load();
  }

  void Set(const char* type, bool ok, Reason why, const std::string& message) {
    SetCondition(result_.status.conditions, type, ok, ReasonName(why), message, generation_,
                 clock_.Now());
  }
  void Set(const char* type, bool ok, const Verdict& verdict) {
    Set(type, ok, verdict.reason, verdict.message);
  }
  // Nothing may change: every managed resource and Ready get the same reason.
  void BlockAll(Reason why, const std::string& message);
  void SetReady();
  void EmitTransitionEvents();
  void RecordFailure(const std::string& resource, std::optional<int64_t> id,
                     const std::string& operation, Reason why, const std::string& message);
  void FillVcpuStatus(const DomainObservation& domain, const VcpuView& view);
  void FillMemoryStatus(const DomainObservation& domain);
  std::map<std::string, std::string> HookEnv(const std::string& operation) const;

  // Runs one vCPU step with its hooks. Returns false when the pass must stop.
  bool ExecuteVcpuStep(unsigned id, bool enable);
  void OnlineInGuest(const DomainObservation& domain);
  bool ExecuteMemoryStep(const backends::MemoryStep& step);
  void ReportVcpus(const VcpuView& view, const VcpuPlan& plan);
  void ReportMemory(const DomainObservation& domain, const MemoryPlan& plan);

  const crd::ElasticVM& object_;
  const crd::ElasticVMSpec& spec_;
  const std::string domain_;
  const int64_t generation_;
  backends::Hypervisor& hypervisor_;
  const Clock& clock_;
  const Options& options_;
  Metrics& metrics_;
  Result result_;

  bool persist_ = false;
  std::vector<unsigned> plugged_;
  std::vector<unsigned> unplugged_;
  std::vector<unsigned> newly_pending_;
  std::string vcpu_failure_;    // "vcpu 3 failed: ..." for the condition message
  std::string memory_failure_;  // the same for memory
};

void Pass::BlockAll(Reason why, const std::string& message) {
  if (ManagesCpu()) Set(condition::kVcpusSynced, false, why, message);
  if (ManagesMemory()) Set(condition::kMemorySynced, false, why, message);
  Set(condition::kReady, false, why, message);
}

void Pass::SetReady() {
  for (const char* type : {condition::kVcpusSynced, condition::kMemorySynced}) {
    if ((type == condition::kVcpusSynced && !ManagesCpu()) ||
        (type == condition::kMemorySynced && !ManagesMemory())) {
      continue;
    }
    const crd::Condition* c = crd::FindCondition(result_.status, type);
    if (c != nullptr && c->status != "True") {
      const crd::Condition copy = *c;
      SetCondition(result_.status.conditions, condition::kReady, false, copy.reason, copy.message,
                   generation_, clock_.Now());
      return;
    }
  }
  std::string message = "the running domain matches the spec";
  if (!ManagesCpu() && !ManagesMemory())
    message = "nothing to manage: spec sets neither cpu nor memory";
  Set(condition::kReady, true, Reason::kSynced, message);
}

// A blocked or failed state is worth an Event when it starts, not on every retry.
void Pass::EmitTransitionEvents() {
  const crd::Condition* before = crd::FindCondition(object_.status, condition::kReady);
  const crd::Condition* after = crd::FindCondition(result_.status, condition::kReady);
  if (after == nullptr) return;
  bool changed =
      before == nullptr || before->status != after->status || before->reason != after->reason;
  if (!changed) return;
  const std::optional<Reason> reason = ParseReason(after->reason);
  if (!reason || !InfoOf(*reason).transition_event) return;
  result_.events.push_back({InfoOf(*reason).failure ? Event::Type::kWarning : Event::Type::kNormal,
                            after->reason, after->message});
}

void Pass::RecordFailure(const std::string& resource, std::optional<int64_t> id,
                         const std::string& operation, Reason why, const std::string& message) {
  auto& failures = result_.status.failures;
  failures.push_back(
      {resource, id, operation, ReasonName(why), message, FormatRfc3339(clock_.Now())});
  if (failures.size() > options_.max_failures) {
    failures.erase(failures.begin(),
                   failures.begin() + static_cast<long>(failures.size() - options_.max_failures));
  }
}

void Pass::FillVcpuStatus(const DomainObservation& domain, const VcpuView& view) {
  crd::VcpuStatus v;
  v.desired = spec_.cpu.vcpus.value_or(0);
  v.current = static_cast<int64_t>(view.enabled.size());
  v.maximum = domain.maximum_vcpus;
  v.enabled = FormatRangeList(view.enabled);
  if (domain.guest_online_cpus) v.online = FormatRangeList(*domain.guest_online_cpus);
  if (!view.stale.empty()) v.qemu = static_cast<int64_t>(view.enabled.size() - view.stale.size());
  v.pending = FormatRangeList(view.pending);
  result_.status.vcpus = v;
}

void Pass::FillMemoryStatus(const DomainObservation& domain) {
  crd::MemoryStatus m;
  if (spec_.memory.size) m.desired = spec_.memory.size->ToString();
  m.current = crd::FormatBytes(domain.memory.current_bytes);
  m.maximum = crd::FormatBytes(domain.memory.maximum_bytes);
  result_.status.memory = m;
}

std::map<std::string, std::string> Pass::HookEnv(const std::string& operation) const {
  return {{"HOTPLUG_DOMAIN", domain_},
          {"HOTPLUG_NAMESPACE", object_.metadata.namespace_},
          {"HOTPLUG_NAME", object_.metadata.name},
          {"HOTPLUG_OPERATION", operation}};
}

bool Pass::ExecuteVcpuStep(unsigned id, bool enable) {
  const std::string operation = enable ? "plug" : "unplug";
  auto env = HookEnv(operation);
  env["HOTPLUG_VCPU"] = std::to_string(id);
  HookOutcome before = RunHook(options_.hooks_dir, "before_set_vcpu", env, options_.hook_timeout);
  if (before.ran && !before.ok) {
    RecordFailure("vcpu", id, operation, Reason::kHookFailed, before.message);
    result_.events.push_back(
        {Event::Type::kWarning, ReasonName(Reason::kHookFailed),
         "vCPU " + std::to_string(id) + " " + operation + " skipped: " + before.message});
    vcpu_failure_ = "vcpu " + std::to_string(id) + " skipped: " + before.message;
    return false;
  }

  const auto start = clock_.Monotonic();
  Status status = hypervisor_.SetVcpu(domain_, id, enable, persist_);
  const double seconds = std::chrono::duration<double>(clock_.Monotonic() - start).count();
  result_.steps.push_back({"vcpu", operation, id, 0, status});
  const bool pending = !enable && status.code() == ErrorCode::kTimeout;
  const char* outcome = status.ok() ? "success" : pending ? "pending" : "failure";
  metrics_.VcpuOperation(operation, outcome, seconds);
  env["HOTPLUG_RESULT"] = outcome;

  if (status.ok()) {
    (enable ? plugged_ : unplugged_).push_back(id);
    result_.events.push_back({Event::Type::kNormal, enable ? "VcpuPlugged" : "VcpuUnplugged",
                              std::string(enable ? "plugged" : "unplugged") + " vCPU " +
                                  std::to_string(id) + " in " + Millis(seconds)});
  } else if (pending) {
    newly_pending_.push_back(id);
    result_.events.push_back(
        {Event::Type::kNormal, ReasonName(Reason::kUnplugPending),
         "unplug of vCPU " + std::to_string(id) +
             " requested; the hypervisor has not confirmed it yet: " + status.message()});
  } else {
    RecordFailure("vcpu", id, operation, ReasonForError(status.code()), status.message());
    result_.events.push_back(
        {Event::Type::kWarning, enable ? "VcpuPlugFailed" : "VcpuUnplugFailed",
         operation + " of vCPU " + std::to_string(id) + " failed: " + status.message()});
    vcpu_failure_ = "vcpu " + std::to_string(id) + " " + operation + " failed: " + status.message();
  }
  RunHook(options_.hooks_dir, "after_set_vcpu", env, options_.hook_timeout);
  return status.ok() || pending;
}

void Pass::OnlineInGuest(const DomainObservation& domain) {
  const bool use_agent =
      spec_.cpu.guest_online == crd::GuestOnline::kAgent ||
      (spec_.cpu.guest_online == crd::GuestOnline::kAuto && domain.guest_agent_available);
  if (plugged_.empty() || !use_agent) return;
  // Guest CPU numbers follow plug order, not libvirt ids: online every guest CPU that the
  // enabled count covers and the guest does not report online yet.
  unsigned enabled = 0;
  for (const auto& v : domain.vcpus) enabled += v.enabled ? 1 : 0;
  enabled += static_cast<unsigned>(plugged_.size());
  std::vector<unsigned> offline;
  const auto& online = domain.guest_online_cpus.value_or(std::vector<unsigned>{});
  for (unsigned cpu = 0; cpu < enabled; ++cpu) {
    if (std::find(online.begin(), online.end(), cpu) == online.end()) offline.push_back(cpu);
  }
  if (offline.empty()) return;
  const auto start = clock_.Monotonic();
  Status status = hypervisor_.OnlineGuestVcpus(domain_, offline);
  metrics_.VcpuOperation("online", status.ok() ? "success" : "failure",
                         std::chrono::duration<double>(clock_.Monotonic() - start).count());
  result_.steps.push_back({"vcpu", "online", -1, 0, status});
  if (!status.ok()) {
    RecordFailure("vcpu", std::nullopt, "online", ReasonForError(status.code()), status.message());
    result_.events.push_back({Event::Type::kWarning, ReasonName(Reason::kGuestAgentUnavailable),
                              "could not bring CPU " + FormatRangeList(offline) +
                                  " online in the guest: " + status.message()});
    vcpu_failure_ = "guest CPU " + FormatRangeList(offline) + " not onlined: " + status.message();
  }
}

bool Pass::ExecuteMemoryStep(const backends::MemoryStep& step) {
  const std::string operation = backends::MemoryStepOpName(step.op);
  auto env = HookEnv(operation);
  env["HOTPLUG_MEMORY_BYTES"] = std::to_string(step.bytes);
  HookOutcome before = RunHook(options_.hooks_dir, "before_set_memory", env, options_.hook_timeout);
  if (before.ran && !before.ok) {
    RecordFailure("memory", std::nullopt, operation, Reason::kHookFailed, before.message);
    memory_failure_ = "memory " + operation + " skipped: " + before.message;
    return false;
  }
  const auto start = clock_.Monotonic();
  Status status = hypervisor_.ApplyMemoryStep(domain_, step, persist_);
  const double seconds = std::chrono::duration<double>(clock_.Monotonic() - start).count();
  result_.steps.push_back({"memory", operation, -1, step.bytes, status});
  metrics_.MemoryOperation(operation, status.ok() ? "success" : "failure", seconds);
  env["HOTPLUG_RESULT"] = status.ok() ? "success" : "failure";
  const std::string what = "memory " + operation + " to " + crd::FormatBytes(step.bytes) +
                           (step.alias.empty() ? "" : " (" + step.alias + ")");
  if (status.ok()) {
    result_.events.push_back(
        {Event::Type::kNormal, "MemoryChanged", what + " in " + Millis(seconds)});
  } else {
    RecordFailure("memory", std::nullopt, operation, ReasonForError(status.code()),
                  status.message());
    result_.events.push_back(
        {Event::Type::kWarning, "MemoryChangeFailed", what + " failed: " + status.message()});
    memory_failure_ = what + " failed: " + status.message();
  }
  RunHook(options_.hooks_dir, "after_set_memory", env, options_.hook_timeout);
  return status.ok();
}

void Pass::ReportVcpus(const VcpuView& view, const VcpuPlan& plan) {
  if (!ManagesCpu()) {
    Set(condition::kVcpusSynced, true, Reason::kNotManaged,
        "spec.cpu.vcpus is not set; vCPUs are left as they are");
    return;
  }
  const int64_t desired = *spec_.cpu.vcpus;
  const auto effective = static_cast<int64_t>(view.effective.size());
  if (plan.blocked) return Set(condition::kVcpusSynced, false, *plan.blocked);
  if (!vcpu_failure_.empty()) {
    std::string message;
    if (!plugged_.empty()) message += "plugged vcpu " + FormatRangeList(plugged_) + "; ";
    if (!unplugged_.empty()) message += "unplugged vcpu " + FormatRangeList(unplugged_) + "; ";
    message += vcpu_failure_;
    result_.requeue_with_backoff = true;
    return Set(condition::kVcpusSynced, false, Reason::kPartialFailure, message);
  }
  if (!view.pending.empty()) {
    result_.requeue_after = options_.pending_requeue;
    return Set(condition::kVcpusSynced, false, Reason::kUnplugPending,
               "unplug of vCPU " + FormatRangeList(view.pending) +
                   " requested; the guest has not released it yet (libvirt reports " +
                   std::to_string(view.enabled.size()) +
                   " enabled: " + FormatRangeList(view.enabled) + ")");
  }
  if (!view.stale.empty()) {
    result_.requeue_after = options_.blocked_requeue;
    const size_t qemu = view.enabled.size() - view.stale.size();
    std::string message =
        "libvirt reports " + std::to_string(view.enabled.size()) + " vCPUs enabled (" +
        FormatRangeList(view.enabled) + ") but QEMU has " + std::to_string(qemu) + ": vCPU " +
        FormatRangeList(view.stale) +
        " left QEMU after libvirt's unplug timed out, and libvirt has not noticed (TCG); ";
    message +=
        effective == desired
            ? "the guest has the desired " + std::to_string(desired) + " vCPUs"
            : "the guest has " + std::to_string(effective) + ", desired " + std::to_string(desired);
    if (plan.shortfall_why) message += "; " + plan.shortfall_why->message;
    return Set(condition::kVcpusSynced, false, Reason::kOutOfSync, message);
  }
  if (effective == desired) {
    return Set(
        condition::kVcpusSynced, true, Reason::kSynced,
        std::to_string(desired) + " vCPUs enabled (" + FormatRangeList(view.effective) + ")");
  }
  if (plan.shortfall_why && plan.plug.empty()) {
    result_.requeue_after = plan.shortfall_why->reason == Reason::kUnplugPending
                                ? options_.pending_requeue
                                : options_.blocked_requeue;
    return Set(condition::kVcpusSynced, false, *plan.shortfall_why);
  }
  result_.requeue_after = std::chrono::milliseconds(1);  // stopped early or more to do
  Set(condition::kVcpusSynced, false, Reason::kInProgress,
      std::to_string(effective) + " of " + std::to_string(desired) + " vCPUs enabled");
}

void Pass::ReportMemory(const DomainObservation& domain, const MemoryPlan& plan) {
  if (!ManagesMemory()) return;
  if (result_.status.memory) {
    result_.status.memory->method = backends::MemoryMethodName(plan.method);
  }
  if (!memory_failure_.empty()) {
    result_.requeue_with_backoff = true;
    return Set(condition::kMemorySynced, false, Reason::kPartialFailure, memory_failure_);
  }
  if (plan.blocked) {
    if (plan.blocked->reason == Reason::kUnplugPending) {
      result_.requeue_after = options_.pending_requeue;
    }
    return Set(condition::kMemorySynced, false, *plan.blocked);
  }
  if (domain.memory.current_bytes == plan.desired_bytes && !plan.settling) {
    return Set(condition::kMemorySynced, true, Reason::kSynced,
               crd::FormatBytes(plan.desired_bytes) + " of memory by " +
                   backends::MemoryMethodName(plan.method));
  }
  result_.requeue_after = options_.pending_requeue;
  Set(condition::kMemorySynced, false, Reason::kInProgress,
      "memory is " + crd::FormatBytes(domain.memory.current_bytes) + ", desired " +
          crd::FormatBytes(plan.desired_bytes) + " (" + backends::MemoryMethodName(plan.method) +
          ")");
}

Result Pass::Run(const std::function<void(const crd::ElasticVMStatus&)>& on_long_pass_start) {
  if (object_.spec_error) {
    BlockAll(Reason::kInvalidSpec, *object_.spec_error);
    EmitTransitionEvents();
    return std::move(result_);
  }

  backends::Result<DomainObservation> observed = hypervisor_.Observe(domain_);
  if (!observed.ok()) {
    const Status& s = observed.status();
    const Reason why = ReasonForError(s.code());
    std::string message = s.message();
    if (s.code() == ErrorCode::kDomainNotFound) {
      message = "no libvirt domain named " + domain_ +
                " on this host; create it or correct spec.domain (" + s.message() + ")";
      result_.requeue_after = options_.blocked_requeue;
    } else {
      message = "cannot observe domain " + domain_ + ": " + s.message();
      result_.requeue_with_backoff = true;
    }
    BlockAll(why, message);
    EmitTransitionEvents();
    return std::move(result_);
  }
  DomainObservation domain = std::move(observed.value());
  std::vector<unsigned> pending_hint;
  if (object_.status.vcpus) pending_hint = ParseRangeList(object_.status.vcpus->pending);
  VcpuView view = ViewVcpus(domain, pending_hint);
  if (ManagesCpu()) ReleaseWantedPending(view, *spec_.cpu.vcpus);
  FillVcpuStatus(domain, view);
  FillMemoryStatus(domain);

  if (domain.state != backends::DomainState::kRunning) {
    BlockAll(Reason::kDomainNotRunning, "domain " + domain_ + " is " +
                                            backends::DomainStateName(domain.state) +
                                            "; vCPUs and memory are changed only while it runs");
    result_.requeue_after = options_.blocked_requeue;
    EmitTransitionEvents();
    return std::move(result_);
  }
  if (domain.job != backends::JobKind::kNone) {
    const bool migrating = domain.job == backends::JobKind::kMigration;
    BlockAll(migrating ? Reason::kMigrationInProgress : Reason::kJobInProgress,
             std::string("domain ") + domain_ + " has a " + backends::JobKindName(domain.job) +
                 " job running; changes wait until it ends");
    result_.requeue_after = options_.blocked_requeue;
    EmitTransitionEvents();
    return std::move(result_);
  }

  persist_ = spec_.persist && domain.persistent;
  VcpuPlan vcpu_plan;
  if (ManagesCpu()) vcpu_plan = PlanVcpuSteps(domain, view, *spec_.cpu.vcpus);
  MemoryPlan memory_plan;
  const bool unplug_unsettled =
      !view.pending.empty() || !view.stale.empty() || !vcpu_plan.unplug.empty();
  if (ManagesMemory()) {
    memory_plan =
        PlanMemoryStep(domain, spec_.memory, unplug_unsettled, options_.balloon_floor_bytes);
  }

  if (spec_.suspend) {
    const bool cpu_ok = !ManagesCpu() ||
                        (!vcpu_plan.blocked && vcpu_plan.plug.empty() && vcpu_plan.unplug.empty() &&
                         vcpu_plan.shortfall == 0 && view.stale.empty() && view.pending.empty());
    const bool memory_ok =
        !ManagesMemory() || (!memory_plan.blocked && !memory_plan.step && !memory_plan.settling);
    const std::string message = "spec.suspend is true: observing only, nothing is changed";
    if (ManagesCpu()) {
      Set(condition::kVcpusSynced, cpu_ok, cpu_ok ? Reason::kSynced : Reason::kSuspended,
          cpu_ok ? message
                 : message + "; desired " + std::to_string(*spec_.cpu.vcpus) + " vCPUs, enabled " +
                       std::to_string(view.effective.size()));
    }
    if (ManagesMemory()) {
      Set(condition::kMemorySynced, memory_ok, memory_ok ? Reason::kSynced : Reason::kSuspended,
          message);
    }
    SetReady();
    EmitTransitionEvents();
    return std::move(result_);
  }

  const size_t step_count = vcpu_plan.plug.size() + vcpu_plan.unplug.size() +
                            (memory_plan.step && !memory_plan.blocked ? 1 : 0);
  if (step_count > 1 && on_long_pass_start) {
    crd::ElasticVMStatus progress = result_.status;
    SetCondition(
        progress.conditions, condition::kReady, false, ReasonName(Reason::kInProgress),
        "changing domain " + domain_ + ": " + std::to_string(step_count) + " steps to take",
        generation_, clock_.Now());
    on_long_pass_start(progress);
  }

  bool go_on = true;
  if (!vcpu_plan.blocked) {
    for (unsigned id : vcpu_plan.plug) {
      if (!go_on || StopRequested()) break;
      go_on = ExecuteVcpuStep(id, true);
    }
    for (unsigned id : vcpu_plan.unplug) {
      if (!go_on || StopRequested()) break;
      go_on = ExecuteVcpuStep(id, false);
    }
    if (go_on && !plugged_.empty()) OnlineInGuest(domain);
  }
  if (go_on && !StopRequested() && memory_plan.step && !memory_plan.blocked) {
    ExecuteMemoryStep(*memory_plan.step);
  }

  // Report what the hypervisor says after the steps, not what the steps meant to do.
  if (!result_.steps.empty()) {
    backends::Result<DomainObservation> after = hypervisor_.Observe(domain_);
    if (!after.ok()) {
      const Status& s = after.status();
      const std::string done =
          (plugged_.empty() ? "" : "plugged vcpu " + FormatRangeList(plugged_) + "; ") +
          (unplugged_.empty() ? "" : "unplugged vcpu " + FormatRangeList(unplugged_) + "; ");
      // The last view is from before the steps: move it by what they did, so the numbers
      // agree with the message instead of showing the state before the pass.
      for (unsigned id : plugged_) domain.vcpus[id].enabled = true;
      for (unsigned id : unplugged_) domain.vcpus[id].enabled = false;
      FillVcpuStatus(domain, ViewVcpus(domain, newly_pending_));
      BlockAll(ReasonForError(s.code()),
               done + "then the domain could not be observed: " + s.message());
      if (s.code() == ErrorCode::kDomainNotFound) {
        result_.requeue_after = options_.blocked_requeue;
      } else {
        result_.requeue_with_backoff = true;
      }
      EmitTransitionEvents();
      return std::move(result_);
    }
    domain = std::move(after.value());
    // Still pending: what was pending before this pass plus what timed out in it, less what
    // this pass plugged (a slot that was released and plugged again is not pending).
    pending_hint = view.pending;
    pending_hint.insert(pending_hint.end(), newly_pending_.begin(), newly_pending_.end());
    std::erase_if(pending_hint, [&](unsigned id) {
      return std::find(plugged_.begin(), plugged_.end(), id) != plugged_.end();
    });
    view = ViewVcpus(domain, pending_hint);
    FillVcpuStatus(domain, view);
    FillMemoryStatus(domain);
    if (ManagesMemory()) {
      MemoryPlan replanned =
          PlanMemoryStep(domain, spec_.memory, false, options_.balloon_floor_bytes);
      memory_plan.settling = replanned.settling || replanned.step.has_value();
    }
  }
  ReportVcpus(view, vcpu_plan);
  ReportMemory(domain, memory_plan);
  SetReady();
  EmitTransitionEvents();
  return std::move(result_);
}

}  // namespace

Reconciler::Reconciler(backends::Hypervisor& hypervisor, const Clock& clock, Options options,
                       Metrics* metrics)
    : hypervisor_(hypervisor), clock_(clock), options_(std::move(options)), metrics_(metrics) {}

Result Reconciler::Reconcile(
    const crd::ElasticVM& object,
    const std::function<void(const crd::ElasticVMStatus&)>& on_long_pass_start) {
  Pass pass(object, hypervisor_, clock_, options_, metrics_ != nullptr ? *metrics_ : no_metrics_);
  return pass.Run(on_long_pass_start);
}

}  // namespace hotplug::reconciler

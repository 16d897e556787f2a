#include "reconciler/pass.h"

#include <algorithm>
#include <cstring>

#include "backends/range_list.h"
#include "crd/quantity.h"
#include "reconciler/conditions.h"

namespace hotplug::reconciler {

using backends::FormatRangeList;
namespace {

using backends::ErrorCode;

// How soon vCPU steps that are left are taken: at once, in a fresh pass.
constexpr std::chrono::milliseconds kNextVcpuStepRequeue{1};

bool SameType(const char* a, const char* b) { return std::strcmp(a, b) == 0; }

}  // namespace

Pass::Pass(const crd::ElasticVM& object, backends::Hypervisor& hypervisor, const Clock& clock,
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

Result Pass::Run(const LongPassCallback& on_long_pass_start) {
  if (CheckSpec() && ObserveDomain() && CheckDomainState()) {
    PlanSteps();
    if (!ConcludeSuspended()) {
      AnnounceLongPass(on_long_pass_start);
      ExecuteSteps();
      if (ObserveAfterSteps()) {
        ConcludeVcpus();
        ConcludeMemory();
      }
    }
  }
  return Finish();
}

// --- stages

bool Pass::CheckSpec() {
  if (!object_.spec_error) return true;
  BlockAll(Reason::kInvalidSpec, *object_.spec_error);
  return false;
}

bool Pass::ObserveDomain() {
  backends::Result<backends::DomainObservation> observed = hypervisor_.Observe(domain_);
  if (!observed.ok()) {
    const backends::Status& s = observed.status();
    BlockOnObserveError(s, s.code() == ErrorCode::kDomainNotFound
                               ? "no libvirt domain named " + domain_ +
                                     " on this host; create it or correct spec.domain (" +
                                     s.message() + ")"
                               : "cannot observe domain " + domain_ + ": " + s.message());
    return false;
  }
  observation_ = std::move(observed.value());
  std::vector<unsigned> pending_hint;
  if (object_.status.vcpus) {
    // Our own text; an unreadable hint (edited by hand) is no hint.
    pending_hint = backends::ParseRangeList(object_.status.vcpus->pending).value_or(pending_hint);
  }
  view_ = ViewVcpus(observation_, pending_hint);
  if (ManagesCpu()) ReleaseWantedPending(view_, *spec_.cpu.vcpus);
  FillVcpuStatus(view_);
  FillMemoryStatus();
  return true;
}

bool Pass::CheckDomainState() {
  if (observation_.state != backends::DomainState::kRunning) {
    BlockAll(Reason::kDomainNotRunning, "domain " + domain_ + " is " +
                                            backends::DomainStateName(observation_.state) +
                                            "; vCPUs and memory are changed only while it runs");
    return false;
  }
  if (observation_.job != backends::JobKind::kNone) {
    const bool migrating = observation_.job == backends::JobKind::kMigration;
    BlockAll(migrating ? Reason::kMigrationInProgress : Reason::kJobInProgress,
             "domain " + domain_ + " has a " + backends::JobKindName(observation_.job) +
                 " job running; changes wait until it ends");
    return false;
  }
  return true;
}

void Pass::PlanSteps() {
  persist_ = spec_.persist && observation_.persistent;
  if (ManagesCpu()) vcpu_plan_ = PlanVcpuSteps(observation_, view_, *spec_.cpu.vcpus);
  const bool unplug_unsettled =
      !view_.pending.empty() || !view_.stale.empty() || !vcpu_plan_.unplug.empty();
  if (ManagesMemory()) {
    memory_plan_ =
        PlanMemoryStep(observation_, spec_.memory, unplug_unsettled, options_.balloon_floor_bytes);
  }
}

bool Pass::ConcludeSuspended() {
  if (!spec_.suspend) return false;
  const std::string message = "spec.suspend is true: observing only, nothing is changed";
  if (ManagesCpu()) {
    const bool ok = !vcpu_plan_.blocked && vcpu_plan_.plug.empty() && vcpu_plan_.unplug.empty() &&
                    vcpu_plan_.shortfall == 0 && view_.stale.empty() && view_.pending.empty();
    Conclude(condition::kVcpusSynced, ok, ok ? Reason::kSynced : Reason::kSuspended,
             ok ? message
                : message + "; desired " + std::to_string(*spec_.cpu.vcpus) + " vCPUs, enabled " +
                      std::to_string(view_.effective.size()));
  }
  if (ManagesMemory()) {
    const bool ok = !memory_plan_.blocked && !memory_plan_.step && !memory_plan_.settling;
    Conclude(condition::kMemorySynced, ok, ok ? Reason::kSynced : Reason::kSuspended, message);
  }
  return true;
}

void Pass::AnnounceLongPass(const LongPassCallback& on_long_pass_start) const {
  const size_t step_count = vcpu_plan_.plug.size() + vcpu_plan_.unplug.size() +
                            (memory_plan_.step && !memory_plan_.blocked ? 1 : 0);
  if (step_count <= 1 || !on_long_pass_start) return;
  crd::ElasticVMStatus progress = result_.status;
  SetCondition(progress.conditions, condition::kReady, false, ReasonName(Reason::kInProgress),
               "changing domain " + domain_ + ": " + std::to_string(step_count) + " steps to take",
               generation_, clock_.Now());
  on_long_pass_start(progress);
}

void Pass::ExecuteSteps() {
  bool go_on = true;
  if (!vcpu_plan_.blocked) {
    for (unsigned id : vcpu_plan_.plug) {
      if (!go_on || StopRequested()) break;
      go_on = ExecuteVcpuStep(id, true);
    }
    for (unsigned id : vcpu_plan_.unplug) {
      if (!go_on || StopRequested()) break;
      go_on = ExecuteVcpuStep(id, false);
    }
    if (go_on && !plugged_.empty()) OnlineInGuest();
  }
  if (go_on && !StopRequested() && memory_plan_.step && !memory_plan_.blocked) {
    ExecuteMemoryStep(*memory_plan_.step);
  }
}

bool Pass::ObserveAfterSteps() {
  if (result_.steps.empty()) return true;
  backends::Result<backends::DomainObservation> after = hypervisor_.Observe(domain_);
  if (!after.ok()) {
    // The last view is from before the steps: move it by what they did, so the numbers
    // agree with the message instead of showing the state before the pass.
    for (unsigned id : plugged_) observation_.vcpus[id].enabled = true;
    for (unsigned id : unplugged_) observation_.vcpus[id].enabled = false;
    FillVcpuStatus(ViewVcpus(observation_, newly_pending_));
    BlockOnObserveError(after.status(), StepsDone() + "then the domain could not be observed: " +
                                            after.status().message());
    return false;
  }
  observation_ = std::move(after.value());
  // Still pending: what was pending before this pass plus what timed out in it, less what
  // this pass plugged (a slot that was released and plugged again is not pending).
  std::vector<unsigned> pending_hint = view_.pending;
  pending_hint.insert(pending_hint.end(), newly_pending_.begin(), newly_pending_.end());
  std::erase_if(pending_hint, [&](unsigned id) {
    return std::find(plugged_.begin(), plugged_.end(), id) != plugged_.end();
  });
  view_ = ViewVcpus(observation_, pending_hint);
  FillVcpuStatus(view_);
  FillMemoryStatus();
  if (ManagesMemory()) {
    MemoryPlan replanned =
        PlanMemoryStep(observation_, spec_.memory, false, options_.balloon_floor_bytes);
    memory_plan_.settling = replanned.settling || replanned.step.has_value();
  }
  return true;
}

void Pass::ConcludeVcpus() {
  if (!ManagesCpu()) {
    return Conclude(condition::kVcpusSynced, true, Reason::kNotManaged,
                    "spec.cpu.vcpus is not set; vCPUs are left as they are");
  }
  const int64_t desired = *spec_.cpu.vcpus;
  const auto effective = static_cast<int64_t>(view_.effective.size());
  if (vcpu_plan_.blocked) return Conclude(condition::kVcpusSynced, false, *vcpu_plan_.blocked);
  if (!vcpu_failure_.empty()) {
    return Conclude(condition::kVcpusSynced, false, Reason::kPartialFailure,
                    StepsDone() + vcpu_failure_);
  }
  if (!view_.pending.empty()) {
    return Conclude(condition::kVcpusSynced, false, Reason::kUnplugPending,
                    "unplug of vCPU " + FormatRangeList(view_.pending) +
                        " requested; the guest has not released it yet (libvirt reports " +
                        std::to_string(view_.enabled.size()) +
                        " enabled: " + FormatRangeList(view_.enabled) + ")");
  }
  if (!view_.stale.empty()) {
    return Conclude(condition::kVcpusSynced, false, Reason::kOutOfSync, OutOfSyncMessage());
  }
  if (effective == desired) {
    return Conclude(
        condition::kVcpusSynced, true, Reason::kSynced,
        std::to_string(desired) + " vCPUs enabled (" + FormatRangeList(view_.effective) + ")");
  }
  if (vcpu_plan_.shortfall_why && vcpu_plan_.plug.empty()) {
    return Conclude(condition::kVcpusSynced, false, *vcpu_plan_.shortfall_why);
  }
  // Stopped early, or the plan was only part of the way: the next pass takes the rest.
  Conclude(condition::kVcpusSynced, false, Reason::kInProgress,
           std::to_string(effective) + " of " + std::to_string(desired) + " vCPUs enabled");
}

std::string Pass::OutOfSyncMessage() const {
  const int64_t desired = *spec_.cpu.vcpus;
  const auto effective = static_cast<int64_t>(view_.effective.size());
  const size_t qemu = view_.enabled.size() - view_.stale.size();
  std::string message =
      "libvirt reports " + std::to_string(view_.enabled.size()) + " vCPUs enabled (" +
      FormatRangeList(view_.enabled) + ") but QEMU has " + std::to_string(qemu) + ": vCPU " +
      FormatRangeList(view_.stale) +
      " left QEMU after libvirt's unplug timed out, and libvirt has not noticed (TCG); ";
  message +=
      effective == desired
          ? "the guest has the desired " + std::to_string(desired) + " vCPUs"
          : "the guest has " + std::to_string(effective) + ", desired " + std::to_string(desired);
  if (vcpu_plan_.shortfall_why) message += "; " + vcpu_plan_.shortfall_why->message;
  return message;
}

void Pass::ConcludeMemory() {
  if (!ManagesMemory()) return;
  const char* method = crd::MemoryMethodName(memory_plan_.method);
  if (result_.status.memory) result_.status.memory->method = method;
  if (!memory_failure_.empty()) {
    return Conclude(condition::kMemorySynced, false, Reason::kPartialFailure, memory_failure_);
  }
  if (memory_plan_.blocked) {
    return Conclude(condition::kMemorySynced, false, *memory_plan_.blocked);
  }
  const uint64_t current = observation_.memory.current_bytes;
  const uint64_t desired = memory_plan_.desired_bytes;
  if (current == desired && !memory_plan_.settling) {
    return Conclude(condition::kMemorySynced, true, Reason::kSynced,
                    crd::FormatBytes(desired) + " of memory by " + method);
  }
  Conclude(condition::kMemorySynced, false, Reason::kInProgress,
           "memory is " + crd::FormatBytes(current) + ", desired " + crd::FormatBytes(desired) +
               " (" + method + ")");
}

Result Pass::Finish() {
  ConcludeReady();
  EmitTransitionEvent();
  for (const Conclusion& conclusion : conclusions_) RequeueFor(conclusion);
  return std::move(result_);
}

// --- conclusions

void Pass::Conclude(const char* type, bool ok, Reason why, std::string message) {
  SetCondition(result_.status.conditions, type, ok, ReasonName(why), message, generation_,
               clock_.Now());
  conclusions_.push_back({type, ok, why, std::move(message)});
}

const Pass::Conclusion* Pass::Concluded(const char* type) const {
  for (auto it = conclusions_.rbegin(); it != conclusions_.rend(); ++it) {
    if (SameType(it->type, type)) return &*it;
  }
  return nullptr;
}

void Pass::BlockAll(Reason why, const std::string& message) {
  if (ManagesCpu()) Conclude(condition::kVcpusSynced, false, why, message);
  if (ManagesMemory()) Conclude(condition::kMemorySynced, false, why, message);
  Conclude(condition::kReady, false, why, message);
}

void Pass::BlockOnObserveError(const backends::Status& status, const std::string& message) {
  BlockAll(ReasonForError(status.code()), message);
}

// Ready is what a stage decided for the whole object, else the first resource that is not
// synced, else Synced.
void Pass::ConcludeReady() {
  if (Concluded(condition::kReady) != nullptr) return;
  for (const Conclusion& conclusion : conclusions_) {
    if (!conclusion.ok) {
      const Conclusion copy = conclusion;
      return Conclude(condition::kReady, false, copy.reason, copy.message);
    }
  }
  Conclude(condition::kReady, true, Reason::kSynced,
           ManagesCpu() || ManagesMemory() ? "the running domain matches the spec"
                                           : "nothing to manage: spec sets neither cpu nor memory");
}

// A state is worth an Event when Ready turns to it, not on every retry.
void Pass::EmitTransitionEvent() {
  const Conclusion* after = Concluded(condition::kReady);
  const crd::Condition* before = crd::FindCondition(object_.status, condition::kReady);
  const ReasonInfo& info = InfoOf(after->reason);
  const bool changed = before == nullptr || before->status != (after->ok ? "True" : "False") ||
                       before->reason != info.name;
  if (!changed || !info.transition_event) return;
  result_.events.push_back(
      {info.failure ? Event::Type::kWarning : Event::Type::kNormal, info.name, after->message});
}

void Pass::RequeueFor(const Conclusion& conclusion) {
  std::chrono::milliseconds after{0};
  switch (InfoOf(conclusion.reason).requeue) {
    case Requeue::kNone:
      return;
    case Requeue::kBackoff:
      result_.requeue_with_backoff = true;
      return;
    case Requeue::kProgress:
      after = SameType(conclusion.type, condition::kMemorySynced) ? options_.pending_requeue
                                                                  : kNextVcpuStepRequeue;
      break;
    case Requeue::kPoll:
      after = options_.pending_requeue;
      break;
    case Requeue::kBlocked:
      after = options_.blocked_requeue;
      break;
  }
  if (result_.requeue_after.count() == 0 || after < result_.requeue_after) {
    result_.requeue_after = after;
  }
}

std::string Pass::StepsDone() const {
  std::string done;
  if (!plugged_.empty()) done += "plugged vcpu " + FormatRangeList(plugged_) + "; ";
  if (!unplugged_.empty()) done += "unplugged vcpu " + FormatRangeList(unplugged_) + "; ";
  return done;
}

// --- status

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

void Pass::FillVcpuStatus(const VcpuView& view) {
  crd::VcpuStatus v;
  v.desired = spec_.cpu.vcpus.value_or(0);
  v.current = static_cast<int64_t>(view.enabled.size());
  v.maximum = observation_.maximum_vcpus;
  v.enabled = FormatRangeList(view.enabled);
  if (observation_.guest_online_cpus) v.online = FormatRangeList(*observation_.guest_online_cpus);
  if (!view.stale.empty()) v.qemu = static_cast<int64_t>(view.enabled.size() - view.stale.size());
  v.pending = FormatRangeList(view.pending);
  result_.status.vcpus = v;
}

void Pass::FillMemoryStatus() {
  crd::MemoryStatus m;
  if (spec_.memory.size) m.desired = spec_.memory.size->ToString();
  m.current = crd::FormatBytes(observation_.memory.current_bytes);
  m.maximum = crd::FormatBytes(observation_.memory.maximum_bytes);
  result_.status.memory = m;
}

}  // namespace hotplug::reconciler

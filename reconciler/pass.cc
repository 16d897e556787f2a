#include "reconciler/pass.h"

#include <algorithm>
#include <cstring>

#include "backends/range_list.h"
#include "crd/quantity.h"
#include "reconciler/conditions.h"
#include "reconciler/topology.h"

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
  if (CheckSpec() && ObserveDomain() && ClaimDomain() && CheckDomainState()) {
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
  if (ManagesCpu()) {
    ResolveDesiredVcpus();
    ReleaseWantedPending(view_, desired_vcpus_);
  }
  return true;
}

void Pass::ResolveDesiredVcpus() {
  if (spec_.cpu.vcpus) {
    desired_vcpus_ = *spec_.cpu.vcpus;
    desired_text_ = "spec.cpu.vcpus is " + std::to_string(desired_vcpus_);
    return;
  }
  const CpuTopology topology(observation_);
  const int64_t per_socket = topology.vcpus_per_socket();
  desired_vcpus_ = *spec_.cpu.sockets * per_socket;
  desired_text_ =
      "spec.cpu.sockets is " + std::to_string(*spec_.cpu.sockets) + " (" +
      std::to_string(desired_vcpus_) + " vCPUs: " + std::to_string(per_socket) + " per socket" +
      (topology.given() ? ", " + topology.Describe() : std::string(", no <topology>")) + ")";
}

bool Pass::ClaimDomain() {
  const backends::DomainClaim ours = OurClaim();
  const std::optional<backends::DomainClaim>& held = observation_.claim;
  std::optional<backends::DomainClaim> replacing;
  if (held && !held->SameOwner(ours)) {
    if (!options_.claim_is_stale || !options_.claim_is_stale(*held, domain_)) {
      BlockClaimed(*held);
      return false;
    }
    replacing = held;
  }
  if (!held || !held->SameOwner(ours)) {
    backends::Result<backends::DomainClaim> owner =
        hypervisor_.ClaimDomain(domain_, ours, replacing);
    if (!owner.ok()) {
      BlockOnObserveError(owner.status(),
                          "cannot claim domain " + domain_ + ": " + owner.status().message());
      return false;
    }
    if (!owner.value().SameOwner(ours)) {
      BlockClaimed(owner.value());
      return false;
    }
    result_.events.push_back(
        {Event::Type::kNormal, "Claimed",
         "ElasticVM " + ours.owner + " now manages domain " + domain_ +
             (replacing ? " (taken over from " + replacing->owner + ", which is gone)" : "")});
  }
  result_.claim = ours;
  result_.claim_known = true;
  FillVcpuStatus(view_);
  FillMemoryStatus();
  FillNumaStatus();
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
  const GuestOs guest = ResolveGuestOs(spec_.guest.os, observation_.guest_os);
  result_.status.guest_os = guest.os.empty() ? "" : guest.Describe();
  if (ManagesCpu()) {
    vcpu_plan_ = PlanVcpuSteps(observation_, view_, desired_vcpus_, desired_text_);
    RefuseVcpuUnplugTheGuestCannotDo(guest, observation_, view_.effective.size(), vcpu_plan_);
    if (!vcpu_plan_.blocked) {
      pin_plan_ = PlanPins(observation_, spec_.cpu.pinning, vcpu_plan_.plug);
      if (pin_plan_.blocked) vcpu_plan_.blocked = pin_plan_.blocked;
    }
  }
  const bool unplug_unsettled =
      !view_.pending.empty() || !view_.stale.empty() || !vcpu_plan_.unplug.empty();
  if (ManagesMemory()) {
    memory_plan_ =
        PlanMemoryStep(observation_, spec_.memory, unplug_unsettled, options_.balloon_floor_bytes);
    RefuseDimmUnplugTheGuestCannotDo(guest, observation_, memory_plan_);
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
                : message + "; desired " + std::to_string(desired_vcpus_) + " vCPUs, enabled " +
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
  std::string message =
      "changing domain " + domain_ + ": " + std::to_string(step_count) + " steps to take";
  const CpuTopology topology(observation_);
  if (topology.threads() > 1 && !vcpu_plan_.blocked) {
    // The cores in flight: each one's threads are changed in consecutive calls.
    std::string cores;
    for (const auto* list : {&vcpu_plan_.plug_cores, &vcpu_plan_.unplug_cores}) {
      for (const auto& core : *list) {
        cores += (cores.empty() ? "" : ", ") + topology.NameCore(topology.CoreOf(core.front()));
      }
    }
    if (!cores.empty()) message += "; cores in flight: " + cores;
  }
  if (progress.vcpus && !vcpu_plan_.blocked) {
    std::vector<unsigned> changing = vcpu_plan_.plug;
    changing.insert(changing.end(), vcpu_plan_.unplug.begin(), vcpu_plan_.unplug.end());
    progress.vcpus->in_flight = FormatRangeList(changing);
  }
  SetCondition(progress.conditions, condition::kReady, false, ReasonName(Reason::kInProgress),
               message, generation_, clock_.Now());
  on_long_pass_start(progress);
}

void Pass::ExecuteSteps() {
  bool go_on = true;
  if (!vcpu_plan_.blocked) {
    // A stop request is honoured between cores, never inside one.
    for (const auto& core : vcpu_plan_.plug_cores) {
      if (!go_on || StopRequested()) break;
      for (size_t i = 0; i < core.size() && go_on; ++i) go_on = ExecuteVcpuStep(core[i], true);
    }
    for (const auto& core : vcpu_plan_.unplug_cores) {
      if (!go_on || StopRequested()) break;
      for (size_t i = 0; i < core.size() && go_on; ++i) go_on = ExecuteVcpuStep(core[i], false);
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
  FillNumaStatus();
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
                    "spec.cpu sets neither vcpus nor sockets; vCPUs are left as they are");
  }
  const int64_t desired = desired_vcpus_;
  const auto effective = static_cast<int64_t>(view_.effective.size());
  if (vcpu_plan_.blocked) {
    return Conclude(condition::kVcpusSynced, false, vcpu_plan_.blocked->reason,
                    vcpu_plan_.blocked->message + IncompleteCoresNote());
  }
  if (!vcpu_failure_.empty()) {
    return Conclude(condition::kVcpusSynced, false, Reason::kPartialFailure,
                    StepsDone() + vcpu_failure_ + IncompleteCoresNote());
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
  const std::string incomplete = IncompleteCoresNote();
  if (effective == desired && incomplete.empty()) {
    return Conclude(condition::kVcpusSynced, true, Reason::kSynced,
                    std::to_string(desired) + " vCPUs enabled (" +
                        FormatRangeList(view_.effective) + ")" + SocketsNote());
  }
  if (vcpu_plan_.shortfall_why && vcpu_plan_.plug.empty()) {
    const Verdict& why = *vcpu_plan_.shortfall_why;
    return Conclude(condition::kVcpusSynced, false, why.reason, why.message + incomplete);
  }
  // Stopped early, or the plan was only part of the way: the next pass takes the rest.
  Conclude(
      condition::kVcpusSynced, false, Reason::kInProgress,
      std::to_string(effective) + " of " + std::to_string(desired) + " vCPUs enabled" + incomplete);
}

std::string Pass::IncompleteCoresNote() const {
  const CpuTopology topology(observation_);
  if (topology.threads() <= 1) return "";
  const std::vector<unsigned> ids = IncompleteCores(topology, view_.effective);
  std::string note;
  for (size_t i = 0; i < ids.size(); i += topology.threads()) {
    const unsigned core = topology.CoreOf(ids[i]);
    std::vector<unsigned> enabled;
    for (unsigned id : topology.ThreadsOf(core)) {
      if (std::find(view_.effective.begin(), view_.effective.end(), id) != view_.effective.end()) {
        enabled.push_back(id);
      }
    }
    note += "; " + topology.NameCore(core) + " is incomplete: only vCPU " +
            FormatRangeList(enabled) + " of its " + std::to_string(topology.threads()) +
            " threads is enabled";
  }
  return note;
}

std::string Pass::SocketsNote() const {
  const CpuTopology topology(observation_);
  const int64_t per_socket = topology.vcpus_per_socket();
  if (!topology.given() || per_socket <= 1 || desired_vcpus_ % per_socket == 0) return "";
  const int64_t whole = desired_vcpus_ / per_socket;
  return "; " + std::to_string(desired_vcpus_) + " vCPUs are not a whole number of sockets (" +
         std::to_string(per_socket) + " vCPUs each, " + topology.Describe() +
         "): the guest may show its CPU topology disordered (openEuler's notes); " +
         (whole > 0 ? std::to_string(whole * per_socket) + " or " : std::string()) +
         std::to_string((whole + 1) * per_socket) + " would be whole sockets";
}

std::string Pass::OutOfSyncMessage() const {
  const int64_t desired = desired_vcpus_;
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

backends::DomainClaim Pass::OurClaim() const {
  return {object_.Key(), object_.metadata.uid, options_.claim_manager};
}

// Not ours: nothing is changed and no numbers are reported, so the owner's cannot be taken
// for this object's.
void Pass::BlockClaimed(const backends::DomainClaim& owner) {
  result_.claim_known = true;  // another's: this object holds none
  result_.status.vcpus.reset();
  result_.status.memory.reset();
  result_.status.numa.clear();
  std::string where = "its claim is in the domain's libvirt metadata";
  if (!owner.manager.empty()) {
    where = "claimed by the hotplug-operator of " + owner.manager + "; " + where;
  }
  BlockAll(Reason::kDomainClaimed, "domain " + domain_ + " is managed by ElasticVM " + owner.owner +
                                       " (" + where +
                                       "); this object changes nothing on it until that one is "
                                       "deleted or points at another domain");
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
  v.desired = ManagesCpu() ? desired_vcpus_ : 0;
  v.current = static_cast<int64_t>(view.enabled.size());
  v.maximum = observation_.maximum_vcpus;
  v.enabled = FormatRangeList(view.enabled);
  if (observation_.guest_online_cpus) v.online = FormatRangeList(*observation_.guest_online_cpus);
  if (!view.stale.empty()) v.qemu = static_cast<int64_t>(view.enabled.size() - view.stale.size());
  v.pending = FormatRangeList(view.pending);
  const CpuTopology topology(observation_);
  v.topology = topology.Describe();
  if (topology.threads() > 1)
    v.incomplete_cores = FormatRangeList(IncompleteCores(topology, view.effective));
  v.pins = PinsOfEnabled(observation_);
  result_.status.vcpus = v;
}

void Pass::FillNumaStatus() {
  result_.status.numa.clear();
  std::map<unsigned, uint64_t> memory = MemoryPerCell(observation_);
  for (const auto& cell : observation_.numa_cells) {
    std::vector<unsigned> enabled;
    for (unsigned id : cell.vcpus) {
      if (id < observation_.vcpus.size() && observation_.vcpus[id].enabled) enabled.push_back(id);
    }
    result_.status.numa.push_back({cell.id, FormatRangeList(cell.vcpus), FormatRangeList(enabled),
                                   crd::FormatBytes(memory[cell.id])});
  }
}

void Pass::FillMemoryStatus() {
  crd::MemoryStatus m;
  if (spec_.memory.size) m.desired = spec_.memory.size->ToString();
  m.current = crd::FormatBytes(observation_.memory.current_bytes);
  m.maximum = crd::FormatBytes(observation_.memory.maximum_bytes);
  result_.status.memory = m;
}

}  // namespace hotplug::reconciler

// One reconcile pass, in named stages (internal to reconciler/; Reconciler::Reconcile runs it).
// Each stage either concludes a condition or hands the pass on to the next; Finish() derives
// Ready, emits the transition Event and takes the soonest requeue any conclusion asked for.
// pass.cc holds the stages, steps.cc the execution of single steps.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/hypervisor.h"
#include "crd/elasticvm.h"
#include "reconciler/clock.h"
#include "reconciler/pinning.h"
#include "reconciler/planner.h"
#include "reconciler/reasons.h"
#include "reconciler/reconciler.h"

namespace hotplug::reconciler {

using LongPassCallback = std::function<void(const crd::ElasticVMStatus&)>;

class Pass {
 public:
  Pass(const crd::ElasticVM& object, backends::Hypervisor& hypervisor, const Clock& clock,
       const Options& options, Metrics& metrics);

  Result Run(const LongPassCallback& on_long_pass_start);

 private:
  // What a stage decided about one condition.
  struct Conclusion {
    const char* type;
    bool ok;
    Reason reason;
    std::string message;
  };

  // --- the stages, in order. Those returning bool return false when the pass ends there.
  bool CheckSpec();         // InvalidSpec
  bool ObserveDomain();     // DomainNotFound, HypervisorUnavailable, ...
  bool ClaimDomain();       // DomainClaimed: one owner per domain
  bool CheckDomainState();  // DomainNotRunning, MigrationInProgress, JobInProgress
  void PlanSteps();
  bool ConcludeSuspended();  // spec.suspend: observe and report only
  void AnnounceLongPass(const LongPassCallback& on_long_pass_start) const;
  void ExecuteSteps();
  bool ObserveAfterSteps();  // the status tells what the hypervisor says after the steps
  void ConcludeVcpus();
  void ConcludeMemory();
  Result Finish();

  // --- conclusions
  void Conclude(const char* type, bool ok, Reason why, std::string message);
  void Conclude(const char* type, bool ok, const Verdict& verdict) {
    Conclude(type, ok, verdict.reason, verdict.message);
  }
  // Nothing may change: every managed resource and Ready get the same reason.
  void BlockAll(Reason why, const std::string& message);
  void BlockOnObserveError(const backends::Status& status, const std::string& message);
  const Conclusion* Concluded(const char* type) const;
  void ConcludeReady();
  void EmitTransitionEvent();
  void RequeueFor(const Conclusion& conclusion);
  std::string OutOfSyncMessage() const;
  std::string StepsDone() const;  // "plugged vcpu 1-2; unplugged vcpu 5; "
  backends::DomainClaim OurClaim() const;
  void BlockClaimed(const backends::DomainClaim& owner);

  // --- status
  void RecordFailure(const std::string& resource, std::optional<int64_t> id,
                     const std::string& operation, Reason why, const std::string& message);
  void FillVcpuStatus(const VcpuView& view);
  void FillMemoryStatus();
  void FillNumaStatus();  // status.numa: vCPUs and memory per guest NUMA cell

  // --- steps (steps.cc)
  // Runs one vCPU step with its hooks. Returns false when the pass must stop.
  bool ExecuteVcpuStep(unsigned id, bool enable);
  // Pins vCPU `id` as pin_plan_ says before it is plugged; false (recorded) when that failed.
  bool PinBeforePlug(unsigned id);
  void RecordVcpuOutcome(unsigned id, bool enable, const backends::Status& status, double seconds);
  void OnlineInGuest();
  bool ExecuteMemoryStep(const backends::MemoryStep& step);
  // Runs the `before_*` hook; false (with the failure recorded) when it refused the step.
  bool BeforeHookAllows(const char* hook, const std::string& resource, std::optional<int64_t> id,
                        const std::string& operation, std::map<std::string, std::string>& env);
  std::map<std::string, std::string> HookEnv(const std::string& operation) const;
  bool StopRequested() const {
    return options_.stop_requested != nullptr && options_.stop_requested->load();
  }

  bool ManagesCpu() const { return spec_.cpu.managed(); }
  // spec.cpu.vcpus, or spec.cpu.sockets in vCPUs of the observed domain; and in words.
  void ResolveDesiredVcpus();
  // "; core 1 (vCPU 2-3) is incomplete: vCPU 2 of its threads enabled" (threads > 1).
  std::string IncompleteCoresNote() const;
  // When the count is not a whole number of sockets: the openEuler warning.
  std::string SocketsNote() const;
  bool ManagesMemory() const { return spec_.memory.size.has_value(); }

  const crd::ElasticVM& object_;
  const crd::ElasticVMSpec& spec_;
  const std::string domain_;
  const int64_t generation_;
  backends::Hypervisor& hypervisor_;
  const Clock& clock_;
  const Options& options_;
  Metrics& metrics_;
  Result result_;

  // What the pass observed and planned.
  backends::DomainObservation observation_;
  VcpuView view_;
  int64_t desired_vcpus_ = 0;  // set by ResolveDesiredVcpus when ManagesCpu()
  std::string desired_text_;   // "spec.cpu.sockets is 2 (8 vCPUs: 4 per socket)"
  VcpuPlan vcpu_plan_;
  PinPlan pin_plan_;  // the pins of vcpu_plan_.plug, set before each is plugged
  MemoryPlan memory_plan_;
  bool persist_ = false;

  // What the steps did.
  std::vector<unsigned> plugged_;
  std::vector<unsigned> unplugged_;
  std::vector<unsigned> newly_pending_;
  std::string vcpu_failure_;    // "vcpu 3 plug failed: ..." for the condition message
  std::string memory_failure_;  // the same for memory

  // What the pass concluded, in order (Ready among them once it is decided).
  std::vector<Conclusion> conclusions_;
};

}  // namespace hotplug::reconciler

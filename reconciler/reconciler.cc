#include "reconciler/reconciler.h"

#include "reconciler/autoscaler.h"
#include "reconciler/pass.h"

namespace hotplug::reconciler {

Reconciler::Reconciler(backends::Hypervisor& hypervisor, const Clock& clock, Options options,
                       Metrics* metrics)
    : hypervisor_(hypervisor), clock_(clock), options_(std::move(options)), metrics_(metrics) {}

Reconciler::~Reconciler() = default;

namespace {

// Another ElasticVM owns the domain (the last pass said so, or this one did): its load is
// the owner's to act on, not this object's.
bool ClaimedByAnother(const crd::ElasticVMStatus& status) {
  const crd::Condition* ready = crd::FindCondition(status, condition::kReady);
  return ready && ready->reason == ReasonName(Reason::kDomainClaimed);
}

}  // namespace

void Reconciler::ForgetAutoscale(const std::string& key, Metrics& metrics) {
  Autoscaler* autoscaler = options_.autoscaler ? options_.autoscaler : own_autoscaler_.get();
  if (autoscaler != nullptr) autoscaler->Forget(key, &metrics);
}

Result Reconciler::Reconcile(
    const crd::ElasticVM& object,
    const std::function<void(const crd::ElasticVMStatus&)>& on_long_pass_start) {
  Metrics& metrics = metrics_ != nullptr ? *metrics_ : no_metrics_;
  if (!HasAutoscale(object) || object.spec.suspend || ClaimedByAnother(object.status)) {
    // Without autoscale its samples go: added again later, it starts afresh.
    if (!HasAutoscale(object)) ForgetAutoscale(object.Key(), metrics);
    Pass pass(object, hypervisor_, clock_, options_, metrics);
    return pass.Run(on_long_pass_start);
  }
  // Autoscale decides the desired numbers; the pass then reaches them by the usual rules.
  if (options_.autoscaler == nullptr && !own_autoscaler_) {
    own_autoscaler_ = std::make_unique<Autoscaler>();
  }
  Autoscaler& autoscaler = options_.autoscaler ? *options_.autoscaler : *own_autoscaler_;
  const AutoscaleTurn turn = autoscaler.Turn(object, hypervisor_, clock_, metrics);
  crd::ElasticVM decided = object;
  if (turn.vcpus) {
    // The decided count replaces spec.cpu.vcpus or spec.cpu.sockets; the topology rules
    // still apply to it (a count that is not whole cores is TopologyMismatch).
    decided.spec.cpu.vcpus = turn.vcpus;
    decided.spec.cpu.sockets.reset();
  }
  if (turn.memory) decided.spec.memory.size = turn.memory;
  Pass pass(decided, hypervisor_, clock_, options_, metrics);
  Result result = pass.Run(on_long_pass_start);
  if (ClaimedByAnother(result.status)) {
    autoscaler.Forget(object.Key(), &metrics);  // no samples, no recommendation, no Events
    return result;
  }
  ApplyTurn(turn, object.metadata.generation, clock_.Now(), result);
  return result;
}

}  // namespace hotplug::reconciler

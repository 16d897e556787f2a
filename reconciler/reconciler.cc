#include "reconciler/reconciler.h"

#include "reconciler/autoscaler.h"
#include "reconciler/pass.h"

namespace hotplug::reconciler {

Reconciler::Reconciler(backends::Hypervisor& hypervisor, const Clock& clock, Options options,
                       Metrics* metrics)
    : hypervisor_(hypervisor), clock_(clock), options_(std::move(options)), metrics_(metrics) {}

Reconciler::~Reconciler() = default;

Result Reconciler::Reconcile(
    const crd::ElasticVM& object,
    const std::function<void(const crd::ElasticVMStatus&)>& on_long_pass_start) {
  Metrics& metrics = metrics_ != nullptr ? *metrics_ : no_metrics_;
  if (!HasAutoscale(object)) {
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
  ApplyTurn(turn, object.metadata.generation, clock_.Now(), result);
  return result;
}

}  // namespace hotplug::reconciler

#include "reconciler/reconciler.h"

#include "reconciler/pass.h"

namespace hotplug::reconciler {

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

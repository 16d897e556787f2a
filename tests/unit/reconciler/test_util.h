// Shared set-up for reconciler tests: a fake hypervisor, a fake clock, and an object whose
// status is carried from pass to pass the way the controller carries it.
#pragma once

#include <gtest/gtest.h>

#include "backends/fake/fake_hypervisor.h"
#include "crd/elasticvm.h"
#include "reconciler/reconciler.h"
#include "tests/support/objects.h"

namespace hotplug::reconciler::testing {

inline crd::ElasticVM MakeVm(const std::string& name, std::optional<int64_t> vcpus) {
  return ::hotplug::testing::MakeElasticVM(name, vcpus);
}

class ReconcilerFixture : public ::testing::Test {
 protected:
  // One pass; the new status is stored on the object, as the controller would write it.
  Result Pass(crd::ElasticVM& vm) {
    Reconciler reconciler(hv_, clock_, options_);
    Result r = reconciler.Reconcile(vm);
    vm.status = r.status;
    return r;
  }
  // Passes until nothing is left to do now (no immediate requeue), at most `limit`.
  Result Converge(crd::ElasticVM& vm, int limit = 20) {
    Result r;
    for (int i = 0; i < limit; ++i) {
      r = Pass(vm);
      if (r.steps.empty() && !r.requeue_with_backoff) break;
    }
    return r;
  }
  static const crd::Condition& Cond(const crd::ElasticVM& vm, const char* type) {
    const crd::Condition* c = crd::FindCondition(vm.status, type);
    if (c == nullptr) {
      ADD_FAILURE() << "no condition " << type;
      static crd::Condition none;
      return none;
    }
    return *c;
  }
  void SetDesired(crd::ElasticVM& vm, int64_t vcpus) {
    vm.spec.cpu.vcpus = vcpus;
    ++vm.metadata.generation;
  }
  unsigned Enabled(const std::string& name) {
    unsigned n = 0;
    const auto domain = hv_.Peek(name);
    for (const auto& v : domain->vcpus) n += v.enabled ? 1 : 0;
    return n;
  }

  backends::fake::FakeHypervisor hv_;
  FakeClock clock_;
  Options options_;
};

}  // namespace hotplug::reconciler::testing

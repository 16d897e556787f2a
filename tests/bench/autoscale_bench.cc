// Autoscale decision cost (issue 15): what one load sample of one autoscaled object costs the
// operator, without the hypervisor's own time. Over the in-memory hypervisor with a scripted
// load per domain and an injected clock:
//   turn     Autoscaler::Turn: read the sample (fake), keep it in the ring, compute the
//            utilisation over the load window, the HPA rule, both windows, step and bounds
//   decide   DecideVcpus alone (the pure rule on a history of one window of samples)
//
//   autoscale_bench [--objects N] [--samples S]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/fake/fake_hypervisor.h"
#include "reconciler/autoscaler.h"
#include "reconciler/clock.h"
#include "tests/bench/bench_support.h"

namespace hotplug::bench {
namespace {

using std::chrono::milliseconds;

crd::ElasticVM AutoscaledVm(int index) {
  crd::ElasticVM vm;
  vm.metadata.name = "vm-" + std::to_string(index);
  vm.metadata.namespace_ = "default";
  vm.metadata.uid = vm.metadata.name;
  crd::CpuAutoscale autoscale;
  autoscale.mode = crd::AutoscaleMode::kAuto;
  autoscale.max_vcpus = 16;
  autoscale.target_utilization = 60;
  vm.spec.cpu.autoscale = autoscale;
  crd::VcpuStatus vcpus;
  vcpus.desired = vcpus.current = 4;
  vcpus.maximum = 16;
  vcpus.enabled = "0-3";
  vm.status.vcpus = vcpus;
  return vm;
}

int Run(int objects, int samples) {
  backends::fake::FakeHypervisor hv;
  reconciler::FakeClock clock;
  hv.SetLoadClock([&] { return clock.Monotonic(); });
  std::vector<crd::ElasticVM> vms;
  for (int i = 0; i < objects; ++i) {
    backends::fake::DomainSpec spec;
    spec.name = "vm-" + std::to_string(i);
    spec.maximum_vcpus = 16;
    spec.current_vcpus = 4;
    hv.AddDomain(spec);
    hv.SetLoad(spec.name, 0.5 + (i % 7));
    vms.push_back(AutoscaledVm(i));
  }
  hv.SetLoadClock([&] { return clock.Monotonic(); });
  reconciler::Autoscaler autoscaler(reconciler::AutoscaleOptions{milliseconds(5000),
                                                                 milliseconds(15000), 16});
  reconciler::Metrics metrics;
  std::vector<double> per_sample_us;
  for (int s = 0; s < samples; ++s) {
    clock.Advance(milliseconds(5000));
    const auto start = SteadyClock::now();
    for (const auto& vm : vms) autoscaler.Turn(vm, hv, clock, metrics);
    per_sample_us.push_back(MillisBetween(start, SteadyClock::now()) * 1000.0 / objects);
  }
  // The pure rule: one object's history of a 5 min window at 5 s samples (60 entries).
  const crd::CpuAutoscale spec = *vms[0].spec.cpu.autoscale;
  reconciler::RecommendationHistory history;
  const int decisions = 200'000;
  const auto start = SteadyClock::now();
  int64_t sink = 0;
  for (int i = 0; i < decisions; ++i) {
    const reconciler::MonoTime at = reconciler::MonoTime{} + milliseconds(5000LL * i);
    sink += reconciler::DecideVcpus(spec, {4, 2.0 + (i % 5) * 0.3}, {16}, history, at).desired;
  }
  const double decide_ns = MillisBetween(start, SteadyClock::now()) * 1e6 / decisions;
  Report({{"bench", "autoscale"},
          {"objects", objects},
          {"samples", samples},
          {"turn_us_per_object_sample", SummarizeMillis(per_sample_us)},
          {"decide_ns", decide_ns},
          {"history_entries", history.size()},
          {"sink", sink}});
  return 0;
}

}  // namespace
}  // namespace hotplug::bench

int main(int argc, char** argv) {
  int objects = 1000, samples = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--objects") == 0) objects = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--samples") == 0) samples = std::atoi(argv[i + 1]);
  }
  if (objects < 1 || samples < 1) {
    std::fprintf(stderr, "usage: autoscale_bench [--objects N>=1] [--samples S>=1]\n");
    return 2;
  }
  return hotplug::bench::Run(objects, samples);
}

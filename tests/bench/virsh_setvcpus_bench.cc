// What a user would do by hand versus what the operator does, on a real TCG guest: `virsh
// setvcpus NAME N --live` (one process, one virDomainSetVcpusFlags for all vCPUs) against one
// reconcile pass (observe, then one virDomainSetVcpu per vCPU, then the status), each adding
// three vCPUs. Each guest (8 vCPU slots, 1 enabled) takes both in turn, 1 -> 4 then 4 -> 7,
// alternating which goes first so neither always gets the fresher guest; TCG cannot unplug
// and plug again (design §4), so every sample uses fresh vCPUs. Also timed: the change ->
// the guest reports every CPU online. Complements tests/bench/libvirt_setvcpu_bench.cc (the
// libvirt engineer's: per-vCPU backend call versus bare virDomainSetVcpu).
//
//   virsh_setvcpus_bench [--samples N]     N guests (default 5); needs root and libvirtd
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include "backends/libvirt/libvirt_hypervisor.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"
#include "tests/bench/bench_support.h"
#include "tests/e2e/guest.h"

namespace hotplug::bench {
namespace {

struct Sample {
  double call_ms = 0;    // until the command / the pass returned
  double online_ms = 0;  // until the guest reported every CPU online
};

bool WaitOnline(const e2e::Guest& guest, unsigned cpus, SteadyClock::time_point start,
                Sample* sample) {
  auto report = guest.WaitForReport(
      [&](const e2e::GuestReport& r) { return r.online_cpus == cpus; }, std::chrono::seconds(60));
  if (!report) {
    std::fprintf(stderr, "guest %s did not online %u CPUs within 60 s\n", guest.name().c_str(),
                 cpus);
    return false;
  }
  sample->online_ms = MillisBetween(start, SteadyClock::now());
  return true;
}

bool ViaVirsh(const e2e::Guest& guest, unsigned to, Sample* sample) {
  auto start = SteadyClock::now();
  e2e::CommandResult result = e2e::Virsh({"setvcpus", guest.name(), std::to_string(to), "--live"});
  sample->call_ms = MillisBetween(start, SteadyClock::now());
  if (result.exit_code != 0) {
    std::fprintf(stderr, "virsh setvcpus %s %u --live: %s\n", guest.name().c_str(), to,
                 result.output.c_str());
    return false;
  }
  return WaitOnline(guest, to, start, sample);
}

bool ViaReconciler(reconciler::Reconciler& reconciler, const e2e::Guest& guest, unsigned to,
                   Sample* sample) {
  crd::ElasticVM object;
  object.metadata.name = guest.name();
  object.metadata.namespace_ = "bench";
  object.metadata.generation = 1;
  object.spec.cpu.vcpus = to;
  object.spec.persist = false;
  auto start = SteadyClock::now();
  reconciler::Result result = reconciler.Reconcile(object);
  sample->call_ms = MillisBetween(start, SteadyClock::now());
  if (!result.status.vcpus || result.status.vcpus->current != to) {
    std::fprintf(stderr, "reconcile of %s to %u vCPUs did not converge\n", guest.name().c_str(),
                 to);
    for (const auto& step : result.steps) {
      std::fprintf(stderr, "  %s %s %lld: %s\n", step.resource.c_str(), step.operation.c_str(),
                   static_cast<long long>(step.id), step.result.ToString().c_str());
    }
    return false;
  }
  return WaitOnline(guest, to, start, sample);
}

}  // namespace
}  // namespace hotplug::bench

int main(int argc, char** argv) {
  using namespace hotplug;
  bench::Flags flags(argc, argv);
  const int samples = static_cast<int>(flags.Int("samples", 5));
  const std::string& skip = e2e::SkipReason();
  if (!skip.empty()) {
    std::printf("SKIPPED: %s\n", skip.c_str());
    return 0;
  }
  backends::libvirt::LibvirtHypervisor hypervisor;
  reconciler::SystemClock clock;
  reconciler::Reconciler reconciler(hypervisor, clock);

  std::vector<double> virsh_call, virsh_online, pass_call, pass_online;
  for (int i = 0; i < samples; ++i) {
    std::string error;
    std::string name = "hotplug-bench-virsh-" + std::to_string(getpid()) + "-" + std::to_string(i);
    auto guest = e2e::Guest::Boot(name, {"--max-vcpus", "8", "--vcpus", "1", "--virtio-mem-mib",
                                         "0", "--memory-mib", "512"},
                                  &error);
    if (!guest) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    bool virsh_first = i % 2 == 0;
    for (int leg = 0; leg < 2; ++leg) {
      unsigned to = leg == 0 ? 4 : 7;
      bench::Sample sample;
      bool use_virsh = (leg == 0) == virsh_first;
      bool ok = use_virsh ? bench::ViaVirsh(*guest, to, &sample)
                          : bench::ViaReconciler(reconciler, *guest, to, &sample);
      if (!ok) return 1;
      (use_virsh ? virsh_call : pass_call).push_back(sample.call_ms);
      (use_virsh ? virsh_online : pass_online).push_back(sample.online_ms);
    }
  }
  auto line = [](const char* what, const std::vector<double>& values) {
    std::printf("  %-40s p50 %8.2f ms  max %8.2f ms  (n=%zu)\n", what,
                bench::Percentile(values, 50),
                values.empty() ? 0.0 : *std::max_element(values.begin(), values.end()),
                values.size());
  };
  std::printf("virsh setvcpus --live vs one reconcile pass, +3 vCPUs each, %d TCG guest(s)\n",
              samples);
  line("virsh setvcpus --live (returned)", virsh_call);
  line("reconcile pass, 3 x SetVcpu (returned)", pass_call);
  line("virsh: -> guest has all CPUs online", virsh_online);
  line("reconcile: -> guest has all CPUs online", pass_online);
  double ratio = bench::Percentile(virsh_call, 50) > 0
                     ? bench::Percentile(pass_call, 50) / bench::Percentile(virsh_call, 50)
                     : 0;
  std::printf("  ratio pass/virsh (returned, p50)         %.2f\n", ratio);
  bench::Report({{"bench", "virsh"},
                 {"samples", samples},
                 {"virsh_call", bench::SummarizeMillis(virsh_call)},
                 {"pass_call", bench::SummarizeMillis(pass_call)},
                 {"virsh_online", bench::SummarizeMillis(virsh_online)},
                 {"pass_online", bench::SummarizeMillis(pass_online)},
                 {"ratio_pass_to_virsh_p50", ratio}});
  return 0;
}

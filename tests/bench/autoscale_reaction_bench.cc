// Autoscale reaction time on a real TCG guest (issue 15): from the guest's load starting to
// the first vCPU plugged, and to the guest reporting it online, at the default up window
// (30 s) and at 5 s, with the operator's default sampling (a sample every 5 s, the load
// averaged over 15 s). One guest (8 slots) serves every trial: trial k starts idle at k vCPUs
// with minVcpus = k and maxVcpus = k + 1, so it plugs exactly one fresh vCPU and never
// unplugs (TCG cannot plug a vCPU again, design §4). Before each trial the guest idles for
// the up window plus the load window, as a VM that was quiet for a while.
//
//   autoscale_reaction_bench [--trials-default N] [--trials-short N]   needs root and libvirtd
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/libvirt/libvirt_hypervisor.h"
#include "reconciler/autoscaler.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"
#include "tests/bench/bench_support.h"
#include "tests/e2e/guest.h"

namespace hotplug::bench {
namespace {

using namespace std::chrono_literals;

constexpr unsigned kMaxVcpus = 8;

bool Burn(const e2e::Guest& guest, int n) {
  e2e::CommandResult sent = e2e::RunGuestScript(
      n > 0 ? std::vector<std::string>{"control", guest.name(), "burn", std::to_string(n)}
            : std::vector<std::string>{"control", guest.name(), "stop"});
  if (sent.exit_code != 0) std::fprintf(stderr, "control: %s\n", sent.output.c_str());
  return sent.exit_code == 0;
}

struct Trial {
  double plug_ms = 0, online_ms = 0;
};

class Bench {
 public:
  explicit Bench(e2e::Guest& guest) : guest_(guest) {}

  // One trial at `vcpus` enabled: idle, then load, until the guest has one more online.
  bool RunTrial(unsigned vcpus, std::chrono::milliseconds up_window, Trial* trial) {
    crd::ElasticVM object = Object(vcpus, up_window);
    reconciler::Autoscaler autoscaler;  // defaults: 5 s samples, 15 s load window
    reconciler::Options options;
    options.autoscaler = &autoscaler;
    reconciler::Reconciler reconciler(backend_, clock_, options);
    if (!Burn(guest_, 0)) return false;
    PassFor(reconciler, object, up_window + autoscaler.options().load_window, nullptr);
    if (!Burn(guest_, static_cast<int>(vcpus) + 1)) return false;
    const auto start = SteadyClock::now();
    bool plugged = false;
    PassFor(reconciler, object, 180s, [&] {
      if (!plugged && object.status.vcpus && object.status.vcpus->current > vcpus) {
        plugged = true;
        trial->plug_ms = MillisBetween(start, SteadyClock::now());
      }
      return plugged;
    });
    if (!plugged) return false;
    auto online = guest_.WaitForReport(
        [&](const e2e::GuestReport& r) { return r.online_cpus == vcpus + 1; }, 60s);
    trial->online_ms = MillisBetween(start, SteadyClock::now());
    return online.has_value();
  }

 private:
  crd::ElasticVM Object(unsigned vcpus, std::chrono::milliseconds up_window) {
    crd::ElasticVM object;
    object.metadata.name = "reaction";
    object.metadata.namespace_ = "bench";
    object.metadata.uid = "trial-" + std::to_string(vcpus);
    object.spec.domain = guest_.name();
    object.spec.persist = false;
    crd::CpuAutoscale autoscale;
    autoscale.mode = crd::AutoscaleMode::kAuto;
    autoscale.min_vcpus = vcpus;
    autoscale.max_vcpus = vcpus + 1;
    autoscale.target_utilization = 60;
    autoscale.scale_up = {up_window, 4};
    autoscale.scale_down = {std::chrono::hours(1), 1};
    object.spec.cpu.autoscale = autoscale;
    return object;
  }
  // Passes every 100 ms (the autoscaler samples only when due) for `how_long` or until
  // `done`; a pass that stops early is the controller's requeue, not a wait for anything.
  void PassFor(reconciler::Reconciler& reconciler, crd::ElasticVM& object,
               std::chrono::milliseconds how_long, const std::function<bool()>& done) {
    const auto end = SteadyClock::now() + how_long;
    while (SteadyClock::now() < end) {
      object.status = reconciler.Reconcile(object).status;
      if (done && done()) return;
      std::this_thread::sleep_for(100ms);
    }
  }

  e2e::Guest& guest_;
  backends::libvirt::LibvirtHypervisor backend_;
  reconciler::SystemClock clock_;
};

int Run(int trials_default, int trials_short) {
  if (!e2e::SkipReason().empty()) {
    std::fprintf(stderr, "skipped: %s\n", e2e::SkipReason().c_str());
    return 0;
  }
  std::string error;
  auto guest = e2e::Guest::Boot(e2e::UniqueDomainName("reaction"),
                                {"--max-vcpus", std::to_string(kMaxVcpus), "--vcpus", "1",
                                 "--virtio-mem-mib", "0", "--control"},
                                &error);
  if (!guest) {
    std::fprintf(stderr, "boot failed: %s\n", error.c_str());
    return 1;
  }
  Bench bench(*guest);
  unsigned vcpus = 1;
  int code = 0;
  for (auto [label, window, trials] : {std::tuple{"default_30s", 30'000, trials_default},
                                       std::tuple{"up_window_5s", 5'000, trials_short}}) {
    std::vector<double> plug, online;
    for (int i = 0; i < trials && vcpus < kMaxVcpus; ++i, ++vcpus) {
      Trial trial;
      if (!bench.RunTrial(vcpus, std::chrono::milliseconds(window), &trial)) {
        std::fprintf(stderr, "%s: trial at %u vCPUs did not plug\n", label, vcpus);
        code = 1;
        break;
      }
      plug.push_back(trial.plug_ms);
      online.push_back(trial.online_ms);
    }
    Report({{"bench", "autoscale_reaction"},
            {"config", label},
            {"up_window_s", window / 1000},
            {"load_to_plug", SummarizeMillis(plug)},
            {"load_to_online", SummarizeMillis(online)}});
  }
  Burn(*guest, 0);
  return code;
}

}  // namespace
}  // namespace hotplug::bench

int main(int argc, char** argv) {
  int trials_default = 3, trials_short = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--trials-default") == 0) trials_default = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--trials-short") == 0) trials_short = std::atoi(argv[i + 1]);
  }
  return hotplug::bench::Run(trials_default, trials_short);
}

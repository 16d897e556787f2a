// The soak: the controller in process over the fake hypervisor and an in-memory API, for
// --seconds (60 in CI, 600 on demand), under random spec changes and random faults: failing
// vCPU calls, a hypervisor that goes away, migrations, unplugs the guest is slow to confirm,
// failing status writes, objects deleted and created again, and operator restarts. At the end
// the faults stop and every object must converge; vCPU 0 must never have been touched;
// resident memory must be flat (the mean VmRSS of the last third of the run within 10% + 8 MiB
// of the first third's, after a warm-up); LeakSanitizer (ASAN_OPTIONS=detect_leaks=1 on the
// sanitizer build) checks the exit for leaks. Prints what it did. Exit 0 on success.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/fake/fake_hypervisor.h"
#include "controller/controller.h"
#include "reconciler/clock.h"
#include "tests/support/fake_api.h"
#include "tests/support/objects.h"
#include "tests/support/poll.h"
#include "tests/support/test_operator.h"

namespace hotplug::reliability {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using backends::fake::FakeHypervisor;
using testing::FakeApi;
using testing::MakeElasticVM;
using testing::PollUntil;
using testing::ReadyReason;

constexpr int kObjects = 24;
constexpr unsigned kMaxVcpus = 16;

// Resident memory of this process in KiB, from /proc/self/status.
long ResidentKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::string Name(int index) { return "soak-" + std::to_string(index); }
std::string Key(int index) { return "default/" + Name(index); }

// One operator "process" over the shared API and hypervisor, with a resync, as in production.
std::unique_ptr<testing::TestOperator> StartOperator(FakeApi& api,
                                                     backends::Hypervisor& hypervisor) {
  controller::Controller::Options options = testing::FastOptions(300ms, 100ms);
  options.resync_period = 2s;
  return std::make_unique<testing::TestOperator>(api, hypervisor, options);
}

// Stops it; a worker that does not stop is a failure of the soak.
void StopOperator(std::unique_ptr<testing::TestOperator>& op) {
  if (!op->Stop(20s)) {
    std::fprintf(stderr, "FAIL: a worker did not stop within 20s\n");
    std::_Exit(1);
  }
  op.reset();
}

struct Tally {
  std::map<std::string, int> actions;
  int64_t passes = 0;
  void Count(const std::string& what) { actions[what]++; }
};

int Run(int seconds, unsigned seed) {
  std::mt19937 random(seed);
  auto pick = [&](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random);
  };
  FakeHypervisor fake;
  FakeApi api;
  for (int i = 0; i < kObjects; ++i) {
    backends::fake::DomainSpec spec;
    spec.name = Name(i);
    spec.maximum_vcpus = kMaxVcpus;
    spec.current_vcpus = 1;
    fake.AddDomain(spec);
  }
  std::map<int, int64_t> desired;
  std::set<int> slow_unplugs;  // domains whose unplugs currently wait for the guest
  auto op = StartOperator(api, fake);
  Tally tally;
  for (int i = 0; i < kObjects; ++i) {
    desired[i] = pick(1, static_cast<int>(kMaxVcpus));
    api.objects.Apply(MakeElasticVM(Name(i), desired[i]));
  }

  std::printf("soak: seed %u (rerun with --seed=%u)\n", seed, seed);
  std::fflush(stdout);
  std::vector<long> rss_kib;
  auto start = Clock::now();
  auto end = start + std::chrono::seconds(seconds);
  auto next_sample = start;
  bool unavailable = false;
  int64_t iterations = 0;
  while (Clock::now() < end && iterations < 100'000'000) {
    iterations++;
    if (Clock::now() >= next_sample) {
      rss_kib.push_back(ResidentKib());
      next_sample += 500ms;
    }
    int object = pick(0, kObjects - 1);
    const std::string domain = Name(object);
    int action = pick(0, 99);
    if (action < 40) {  // a spec change, now and then out of range
      int64_t vcpus = pick(0, 9) == 0 ? pick(0, 1) * (kMaxVcpus + 1) : pick(1, kMaxVcpus);
      desired[object] = vcpus;
      api.objects.Apply(MakeElasticVM(domain, vcpus));
      tally.Count(vcpus == 0 || vcpus > kMaxVcpus ? "spec change (invalid)" : "spec change");
    } else if (action < 55) {  // one vCPU call fails
      backends::fake::Fault fault;
      fault.code = backends::ErrorCode::kInternal;
      fault.message = "soak: injected failure";
      fake.FailVcpu(domain, static_cast<unsigned>(pick(1, kMaxVcpus - 1)), fault);
      tally.Count("vCPU call fails");
    } else if (action < 63) {
      api.status.FailNextWrites(pick(1, 4));
      tally.Count("status writes fail");
    } else if (action < 68) {
      unavailable = !unavailable;
      fake.SetUnavailable(unavailable);
      tally.Count(unavailable ? "hypervisor unavailable" : "hypervisor back");
    } else if (action < 73) {
      bool migrating = pick(0, 1) == 0;
      fake.SetJob(domain, migrating ? backends::JobKind::kMigration : backends::JobKind::kNone);
      tally.Count(migrating ? "migration starts" : "migration ends");
    } else if (action < 78) {
      if (slow_unplugs.insert(object).second) {
        fake.SetUnplugTimesOut(domain, true);
        tally.Count("unplugs wait for the guest");
      } else {
        slow_unplugs.erase(object);
        fake.SetUnplugTimesOut(domain, false);
        fake.CompletePendingUnplugs(domain);
        tally.Count("guest confirms unplugs");
      }
    } else if (action < 81) {
      api.objects.Delete(Key(object));
      api.objects.Apply(MakeElasticVM(domain, desired[object]));
      tally.Count("object deleted and created again");
    } else if (action < 82) {
      tally.passes += op->passes();
      StopOperator(op);
      op = StartOperator(api, fake);
      tally.Count("operator restart");
    } else {
      tally.Count("nothing (the workers catch up)");
    }
    std::this_thread::sleep_for(10ms);  // pacing: ~100 actions a second
  }

  // The faults stop; every object gets a valid final spec and must converge.
  fake.SetUnavailable(false);
  for (int i = 0; i < kObjects; ++i) {
    fake.SetJob(Name(i), backends::JobKind::kNone);
    fake.SetUnplugTimesOut(Name(i), false);
    fake.CompletePendingUnplugs(Name(i));
  }
  fake.ClearFaults();
  for (int i = 0; i < kObjects; ++i) {
    if (desired[i] < 1 || desired[i] > static_cast<int64_t>(kMaxVcpus)) {
      desired[i] = pick(1, kMaxVcpus);
      api.objects.Apply(MakeElasticVM(Name(i), desired[i]));
    }
  }
  int failed = 0;
  int not_converged = 0;
  for (int i = 0; i < kObjects; ++i) {
    bool converged = PollUntil(
        [&] {
          auto vm = api.objects.Get(Key(i));
          auto seen = fake.Peek(Name(i));
          if (!vm || !vm->status.vcpus || !seen) return false;
          int64_t enabled = 0;
          for (const auto& vcpu : seen->vcpus) enabled += vcpu.enabled ? 1 : 0;
          return ReadyReason(vm) == "True/Synced" && enabled == desired[i] &&
                 vm->status.vcpus->current == desired[i] &&
                 vm->status.observed_generation == vm->metadata.generation;
        },
        30s);
    if (!converged) {
      failed++;
      not_converged++;
      auto vm = api.objects.Get(Key(i));
      auto seen = fake.Peek(Name(i));
      std::string hypervisor_enabled;
      for (const auto& vcpu : seen ? seen->vcpus : std::vector<backends::VcpuInfo>{}) {
        if (vcpu.enabled) hypervisor_enabled += std::to_string(vcpu.id) + " ";
      }
      const bool has_vcpus = vm && vm->status.vcpus;
      std::fprintf(stderr,
                   "FAIL: %s did not converge on %lld vCPUs: %s; status enabled \"%s\" "
                   "pending \"%s\"; the hypervisor has vCPUs %s\n",
                   Key(i).c_str(), static_cast<long long>(desired[i]), ReadyReason(vm).c_str(),
                   has_vcpus ? vm->status.vcpus->enabled.c_str() : "",
                   has_vcpus ? vm->status.vcpus->pending.c_str() : "", hypervisor_enabled.c_str());
    }
  }
  for (const auto& call : fake.SuccessfulCalls()) {
    if (call.id == 0) {
      failed++;
      std::fprintf(stderr, "FAIL: vCPU 0 of %s was touched\n", call.domain.c_str());
    }
  }
  tally.passes += op->passes();
  StopOperator(op);

  // Resident memory: first vs last third, after a warm-up of the first 10% of samples.
  size_t warm = rss_kib.size() / 10;
  size_t usable = rss_kib.size() - warm;
  double first = 0, last = 0;
  if (usable >= 6) {
    size_t third = usable / 3;
    for (size_t i = 0; i < third; ++i) first += static_cast<double>(rss_kib[warm + i]);
    for (size_t i = 0; i < third; ++i) last += static_cast<double>(rss_kib[rss_kib.size() - 1 - i]);
    first /= static_cast<double>(third);
    last /= static_cast<double>(third);
    if (last > first * 1.10 + 8 * 1024) {
      failed++;
      std::fprintf(stderr, "FAIL: resident memory grew from %.0f KiB to %.0f KiB\n", first, last);
    }
  }

  std::printf(
      "soak: %d s, seed %u, %d objects: %lld reconcile passes, %lld status writes "
      "(%lld failed on purpose), %lld Events, %zu successful vCPU calls\n",
      seconds, seed, kObjects, static_cast<long long>(tally.passes),
      static_cast<long long>(api.status.attempts()), static_cast<long long>(api.status.failures()),
      static_cast<long long>(api.events.recorded()), fake.SuccessfulCalls().size());
  for (const auto& [what, count] : tally.actions) std::printf("  %6d  %s\n", count, what.c_str());
  std::printf("  resident memory: first third %.0f KiB, last third %.0f KiB (%zu samples)\n", first,
              last, rss_kib.size());
  std::printf("%s: %d objects converged of %d\n", failed ? "FAIL" : "PASS",
              kObjects - not_converged, kObjects);
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace hotplug::reliability

int main(int argc, char** argv) {
  int seconds = 60;
  unsigned seed = static_cast<unsigned>(std::random_device{}());
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) == 0) {
      seconds = std::atoi(arg.c_str() + 10);
    } else if (arg.rfind("--seed=", 0) == 0) {
      seed = static_cast<unsigned>(std::strtoul(arg.c_str() + 7, nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: %s [--seconds=N] [--seed=N]\n", argv[0]);
      return 2;
    }
  }
  if (seconds < 1 || seconds > 24 * 3600) {
    std::fprintf(stderr, "--seconds must be 1..86400\n");
    return 2;
  }
  return hotplug::reliability::Run(seconds, seed);
}

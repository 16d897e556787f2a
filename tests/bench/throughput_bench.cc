// Reconcile throughput (design §5): passes per second through the real Controller, work
// queue and Reconciler over the in-memory hypervisor. Objects live in memory (no API
// server), so the figures are the operator's own cost per pass:
//   idle          objects in sync: observe, find nothing to do, write nothing
//   plug-nowrite  every pass plugs or unplugs one vCPU; the status write is discarded
//   plug-write    the same, and the status is encoded/decoded as KubeStatusWriter does
//                 around its PUT, then cached
// each with 1 and 2 workers at zero hypervisor latency; then slow plugs (each SetVcpu takes
// --slow-latency-ms) with more and more workers, to show workers do not idle behind slow
// calls: passes/s should grow with the workers while the VMs in flight do.
//
//   throughput_bench [--objects N] [--rounds R] [--slow-objects M] [--slow-latency-ms L]
//                    [--slow-workers 1,2,4,...] [--log-level warn]
#include <sys/resource.h>

#include <cstdio>
#include <sstream>
#include <thread>

#include "backends/fake/fake_hypervisor.h"
#include "controller/controller.h"
#include "controller/log.h"
#include "reconciler/clock.h"
#include "tests/bench/bench_support.h"
#include "tests/support/fake_event_recorder.h"
#include "tests/support/fake_object_source.h"
#include "tests/support/fake_status_writer.h"

namespace hotplug::bench {
namespace {

std::string Name(int index) {
  char name[32];
  std::snprintf(name, sizeof(name), "vm-%06d", index);
  return name;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Counts finished passes: ReconcileDone is called after a pass's status write.
class DoneCounter final : public controller::ControllerMetrics {
 public:
  void ReconcileDone(std::string_view, double) override { ++done_; }
  int64_t done() const { return done_.load(); }

 private:
  std::atomic<int64_t> done_{0};
};

struct Bed {
  backends::fake::FakeHypervisor fake;
  TimedHypervisor timed{fake, nullptr};
  testing::FakeObjectSource source;
  testing::FakeStatusWriter writer{source, testing::FakeStatusWriter::Mode::kEncodeAndStore};
  testing::FakeEventRecorder events{testing::FakeEventRecorder::Keep::kTotal};
  reconciler::SystemClock clock;
  std::vector<std::string> keys;
  DoneCounter done;

  explicit Bed(int objects) {
    for (int i = 0; i < objects; ++i) {
      backends::fake::DomainSpec domain;
      domain.name = Name(i);
      domain.maximum_vcpus = 8;
      domain.current_vcpus = 1;
      fake.AddDomain(domain);
      crd::ElasticVM object;
      object.metadata.name = Name(i);
      object.metadata.namespace_ = "default";
      object.metadata.uid = "uid-" + Name(i);
      object.metadata.resource_version = "1";
      object.metadata.generation = 1;
      object.spec.cpu.vcpus = 1;
      keys.push_back(object.Key());
      source.Put(std::move(object), /*notify=*/false);
    }
  }

  // Every object asks for the other of 1 and 2 vCPUs: one SetVcpu per object.
  void ToggleAll() {
    for (const auto& key : keys) {
      source.Mutate(key, [](crd::ElasticVM& object) {
        object.spec.cpu.vcpus = *object.spec.cpu.vcpus == 1 ? 2 : 1;
        object.metadata.generation++;
      });
    }
  }
};

// Notifies every key and waits until the controller finished that many more passes.
// Returns the seconds it took.
double RunRound(Bed& bed) {
  int64_t target = bed.done.done() + static_cast<int64_t>(bed.keys.size());
  auto start = SteadyClock::now();
  for (const auto& key : bed.keys) bed.source.Notify(key);
  while (bed.done.done() < target) std::this_thread::sleep_for(std::chrono::microseconds(100));
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

controller::Controller::Options ControllerOptions(Bed& bed, int workers) {
  controller::Controller::Options options;
  options.metrics = &bed.done;
  options.workers = workers;
  options.resync_period = std::chrono::milliseconds(0);
  return options;
}

void Measure(Bed& bed, const std::string& mode, int workers, int rounds) {
  bool plug = mode != "idle";
  bed.writer.set_mode(mode == "plug-nowrite" ? testing::FakeStatusWriter::Mode::kDiscard
                                             : testing::FakeStatusWriter::Mode::kEncodeAndStore);
  controller::Controller controller(bed.source, bed.writer, bed.events, bed.timed, bed.clock,
                                    ControllerOptions(bed, workers));
  controller.Start();
  controller.StartWorkers();
  // Converge first (statuses written), so an idle round writes nothing.
  bed.writer.set_mode(testing::FakeStatusWriter::Mode::kEncodeAndStore);
  RunRound(bed);
  bed.writer.set_mode(mode == "plug-nowrite" ? testing::FakeStatusWriter::Mode::kDiscard
                                             : testing::FakeStatusWriter::Mode::kEncodeAndStore);

  int64_t passes_before = controller.passes();
  int64_t writes_before = bed.writer.attempts();
  int64_t calls_before = bed.timed.set_vcpu_calls();
  double cpu_before = CpuSeconds();
  double seconds = 0;
  for (int round = 0; round < rounds; ++round) {
    if (plug) bed.ToggleAll();
    seconds += RunRound(bed);
  }
  double cpu = CpuSeconds() - cpu_before;
  int64_t passes = controller.passes() - passes_before;
  controller.Stop(SteadyClock::now() + std::chrono::seconds(30));
  double rate = static_cast<double>(passes) / seconds;
  std::printf("%-13s workers=%d  %8.0f passes/s  %6.1f us CPU/pass  (%lld passes, %lld status "
              "writes, %lld SetVcpu)\n",
              mode.c_str(), workers, rate, cpu / static_cast<double>(passes) * 1e6,
              static_cast<long long>(passes),
              static_cast<long long>(bed.writer.attempts() - writes_before),
              static_cast<long long>(bed.timed.set_vcpu_calls() - calls_before));
  Report({{"bench", "throughput"},
          {"mode", mode},
          {"workers", workers},
          {"objects", bed.keys.size()},
          {"passes", passes},
          {"seconds", seconds},
          {"passes_per_second", rate},
          {"cpu_us_per_pass", cpu / static_cast<double>(passes) * 1e6},
          {"status_writes", bed.writer.attempts() - writes_before},
          {"set_vcpu_calls", bed.timed.set_vcpu_calls() - calls_before}});
}

void MeasureSlow(int objects, int latency_ms, const std::vector<int>& worker_counts) {
  Bed bed(objects);
  bed.fake.SetLatency(std::chrono::microseconds(0), std::chrono::milliseconds(latency_ms));
  for (int workers : worker_counts) {
    controller::Controller controller(bed.source, bed.writer, bed.events, bed.timed, bed.clock,
                                      ControllerOptions(bed, workers));
    controller.Start();
    controller.StartWorkers();
    if (workers == worker_counts.front()) RunRound(bed);  // converge
    bed.ToggleAll();
    bed.timed.ResetMaxInFlight();
    int64_t passes_before = controller.passes();
    double seconds = RunRound(bed);
    int64_t passes = controller.passes() - passes_before;
    controller.Stop(SteadyClock::now() + std::chrono::seconds(30));
    double rate = static_cast<double>(passes) / seconds;
    double ideal = std::min(workers, objects) * 1000.0 / latency_ms;
    std::printf("slow plugs (%d ms) workers=%-3d %7.1f passes/s  (ideal %6.1f, %3.0f%%)  "
                "max in flight %d\n",
                latency_ms, workers, rate, ideal, rate / ideal * 100, bed.timed.max_in_flight());
    Report({{"bench", "throughput"},
            {"mode", "slow"},
            {"latency_ms", latency_ms},
            {"workers", workers},
            {"objects", objects},
            {"passes", passes},
            {"seconds", seconds},
            {"passes_per_second", rate},
            {"ideal_passes_per_second", ideal},
            {"max_in_flight", bed.timed.max_in_flight()}});
  }
}

}  // namespace
}  // namespace hotplug::bench

int main(int argc, char** argv) {
  using namespace hotplug;
  bench::Flags flags(argc, argv);
  hotplug::log::Level level = hotplug::log::Level::kWarn;
  hotplug::log::ParseLevel(flags.Text("log-level", "warn"), &level);
  hotplug::log::SetLevel(level);
  int objects = static_cast<int>(flags.Int("objects", 2000));
  int rounds = static_cast<int>(flags.Int("rounds", 5));
  std::vector<int> slow_workers;
  std::stringstream list(flags.Text("slow-workers", "1,2,4,8,16,32,64"));
  for (std::string item; std::getline(list, item, ',');) slow_workers.push_back(std::stoi(item));

  std::printf("throughput: %d objects, %d rounds per figure, fake hypervisor at zero latency\n",
              objects, rounds);
  {
    bench::Bed bed(objects);
    for (const char* mode : {"idle", "plug-nowrite", "plug-write"}) {
      for (int workers : {1, 2}) bench::Measure(bed, mode, workers, rounds);
    }
  }
  bench::MeasureSlow(static_cast<int>(flags.Int("slow-objects", 256)),
                     static_cast<int>(flags.Int("slow-latency-ms", 50)), slow_workers);
  return 0;
}

// Resident memory per cached ElasticVM (design §5): the real Informer (LIST + WATCH, its
// cache) feeding a started Controller (its domain index and work queue), against
// synthetic_apiserver.py, which serves realistic objects generated from their index. The
// bench stands in for idle workers (it takes each key from the queue and hands it back), so
// nothing but the objects grows. At each size: VmRSS after malloc_trim, minus the empty
// process. Then every object is deleted and the RSS is read again. --informer-only leaves
// the Controller out (the informer's cache alone, for the breakdown).
//
//   memory_bench --server http://127.0.0.1:PORT [--sizes 0,1000,10000,100000] [--informer-only]
#include <cstdio>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "backends/fake/fake_hypervisor.h"
#include "controller/controller.h"
#include "controller/kube/client.h"
#include "controller/kube/informer.h"
#include "controller/log.h"
#include "reconciler/clock.h"
#include "tests/bench/bench_support.h"
#include "tests/support/fake_event_recorder.h"
#include "tests/support/fake_object_source.h"
#include "tests/support/fake_status_writer.h"

namespace hotplug::bench {
namespace {

using controller::kube::Client;
using controller::kube::Informer;

// Asks the server for `count` objects and waits until the informer holds exactly that many
// and the queue is empty. Returns false after `timeout`.
bool Resize(Client& client, Informer& informer, controller::Controller* controller, size_t count,
            std::chrono::seconds timeout) {
  auto answer = client.Post("/_bench/count", nlohmann::json{{"count", count}}.dump());
  if (!answer.ok()) {
    std::fprintf(stderr, "memory_bench: /_bench/count failed: %s\n", answer.error.c_str());
    return false;
  }
  std::string target_rv = nlohmann::json::parse(answer.body).value("resourceVersion", "");
  auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    if (informer.LastResourceVersion() == target_rv &&
        (controller == nullptr || controller->queue().Len() == 0)) {
      if (informer.Keys().size() == count) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "memory_bench: %zu objects not cached in time (have %zu)\n", count,
               informer.Keys().size());
  return false;
}

}  // namespace
}  // namespace hotplug::bench

int main(int argc, char** argv) {
  using namespace hotplug;
  using bench::SteadyClock;
  bench::Flags flags(argc, argv);
  hotplug::log::SetLevel(hotplug::log::Level::kWarn);
  std::string server = flags.Text("server", "");
  if (server.empty()) {
    std::fprintf(stderr, "usage: memory_bench --server URL [--sizes 0,1000,10000,100000]\n");
    return 2;
  }
  std::vector<size_t> sizes;
  std::stringstream list(flags.Text("sizes", "0,1000,10000,100000"));
  for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::stoul(item));

  controller::kube::InitHttpThreadPool(4);
  controller::kube::Config config;
  config.server = server;
  controller::kube::Client client(config, controller::kube::Client::Options());
  controller::kube::Informer::Options informer_options;
  informer_options.ns = "default";
  controller::kube::Informer informer(client, informer_options);
  backends::fake::FakeHypervisor fake;
  hotplug::testing::FakeObjectSource unused_source;
  hotplug::testing::FakeStatusWriter writer(unused_source,
                                            hotplug::testing::FakeStatusWriter::Mode::kDiscard);
  hotplug::testing::FakeEventRecorder events(
      hotplug::testing::FakeEventRecorder::Keep::kTotal);
  reconciler::SystemClock clock;
  controller::Controller::Options options;
  options.resync_period = std::chrono::milliseconds(0);
  const bool informer_only = flags.Has("informer-only");
  std::optional<controller::Controller> controller;
  std::thread drain;
  if (informer_only) {
    informer.Start([](const std::string&) {});
  } else {
    controller.emplace(informer, writer, events, fake, clock, options);
    controller->Start();
    // Idle workers: take every key and give it back, so the queue holds nothing.
    drain = std::thread([&] {
      while (auto key = controller->queue().Get()) controller->queue().Done(*key);
    });
  }
  controller::Controller* running = controller ? &*controller : nullptr;

  auto sample = client.Get("/_bench/object");
  size_t object_json_bytes = sample.ok() ? sample.body.size() : 0;

  auto deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (!informer.HasSynced() && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  size_t baseline = 0;
  bool ok = true;
  std::printf("memory: %s, objects of %zu bytes of JSON each\n",
              informer_only ? "Informer alone" : "Informer + Controller", object_json_bytes);
  for (size_t size : sizes) {
    auto start = SteadyClock::now();
    if (!bench::Resize(client, informer, running, size, std::chrono::seconds(600))) {
      ok = false;
      break;
    }
    double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    size_t rss = bench::ResidentBytes();
    if (size == 0 && baseline == 0) baseline = rss;
    double per_object =
        size == 0 ? 0.0 : (static_cast<double>(rss) - static_cast<double>(baseline)) / size;
    std::printf("%7zu objects  RSS %8.1f MiB  +%8.1f MiB over empty  %7.0f B/object  "
                "(cached in %.1f s)\n",
                size, rss / 1048576.0, (static_cast<double>(rss) - baseline) / 1048576.0,
                per_object, seconds);
    bench::Report({{"bench", "memory"},
                   {"phase", "cached"},
                   {"scope", informer_only ? "informer" : "informer+controller"},
                   {"objects", size},
                   {"rss_bytes", rss},
                   {"baseline_bytes", baseline},
                   {"bytes_per_object", per_object},
                   {"object_json_bytes", object_json_bytes},
                   {"seconds_to_cache", seconds}});
  }
  if (ok && bench::Resize(client, informer, running, 0, std::chrono::seconds(600))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    size_t rss = bench::ResidentBytes();
    std::printf("deleted all    RSS %8.1f MiB  +%8.1f MiB over empty\n", rss / 1048576.0,
                (static_cast<double>(rss) - baseline) / 1048576.0);
    bench::Report({{"bench", "memory"},
                   {"phase", "deleted"},
                   {"scope", informer_only ? "informer" : "informer+controller"},
                   {"objects", 0},
                   {"rss_bytes", rss},
                   {"baseline_bytes", baseline}});
  }
  if (controller) {
    controller->Stop(SteadyClock::now() + std::chrono::seconds(10));
    drain.join();
  } else {
    informer.Stop();
  }
  return ok ? 0 : 1;
}

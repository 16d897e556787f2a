#include "controller/central_main.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "controller/health.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/event_recorder.h"
#include "controller/kube/informer.h"
#include "controller/kube/node_assigner.h"
#include "controller/log.h"
#include "controller/process_parts.h"
#include "reconciler/clock.h"

#ifndef HOTPLUG_VERSION
#define HOTPLUG_VERSION "unknown"
#endif

namespace hotplug::controller {
namespace {

// The assigner's own parts, with what they need kept alive.
struct CentralParts {
  kube::Config config;
  std::unique_ptr<kube::Client> client;
  std::unique_ptr<kube::Informer> informer;
  std::unique_ptr<kube::KubeEventRecorder> events;
  std::unique_ptr<kube::NodeAssigner> assigner;
};

bool BuildCentral(const Flags& flags, const MetricsSeams& metrics, const reconciler::Clock& clock,
                  CentralParts* parts) {
  std::string error;
  if (!kube::LoadConfig(flags.kubeconfig, &parts->config, &error)) {
    log::Error("cannot load the Kubernetes configuration", {{"error", error}});
    return false;
  }
  log::Info("central node assigner", {{"server", parts->config.server},
                                      {"agentLeases", flags.agent_lease_namespace},
                                      {"namespace", flags.ns.empty() ? "*" : flags.ns}});
  // The pool: the watch stream, the workers' writes, events, the lease, the presence poll.
  kube::InitHttpThreadPool(static_cast<size_t>(5 + flags.workers));
  parts->client = std::make_unique<kube::Client>(parts->config,
                                                 ClientOptions(std::chrono::seconds(15), metrics));
  kube::Informer::Options informer_options;
  informer_options.ns = flags.ns;
  informer_options.metrics = metrics.informer;
  parts->informer = std::make_unique<kube::Informer>(*parts->client, informer_options);
  parts->events = std::make_unique<kube::KubeEventRecorder>(
      *parts->client, kube::KubeEventRecorder::Options{.component = "hotplug-operator-central",
                                                       .host = "",
                                                       .queue_limit = 1000,
                                                       .remembered = 4096});
  parts->assigner = std::make_unique<kube::NodeAssigner>(
      *parts->client, *parts->informer, *parts->events, clock,
      kube::NodeAssigner::Options{.lease_namespace = flags.agent_lease_namespace,
                                  .workers = flags.workers,
                                  .presence_poll = std::chrono::seconds(5)});
  return true;
}

// The workers finish, queued Events are sent for a moment, the lease is handed over.
int StopCentral(CentralParts& parts, Leadership& leadership, HealthServer& health) {
  auto deadline = std::chrono::steady_clock::now() + kShutdownDeadline;
  bool drained = parts.assigner->Stop(deadline);
  parts.events->Flush(
      std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(3)));
  parts.events->Stop();
  if (leadership.elector) leadership.elector->Stop();  // after the workers are done
  health.Stop();
  if (!drained) {
    log::Error("a worker did not finish before the shutdown deadline; exiting anyway");
    std::fflush(nullptr);
    std::_Exit(1);
  }
  log::Info("stopped", {{"labels", std::to_string(parts.assigner->labels_written())},
                        {"reports", std::to_string(parts.assigner->reports_written())}});
  return leadership.lost ? 1 : 0;
}

}  // namespace

int RunCentral(const Flags& flags, const sigset_t& stop_signals) {
  reconciler::SystemClock clock;
  PrometheusMetrics metrics(HOTPLUG_VERSION, clock);
  if (!ServeMetrics(flags, metrics)) return 1;
  MetricsSeams metrics_seams = {&metrics, &metrics, &metrics};
  CentralParts parts;
  if (!BuildCentral(flags, metrics_seams, clock, &parts)) return 1;
  kube::NodeAssigner& assigner = *parts.assigner;
  HealthServer health([&assigner] { return assigner.HasSynced(); });
  if (!ServeHealth(flags, health)) return 1;
  assigner.Start();
  Leadership leadership;
  StartWorkersOrElect(
      flags, parts.config, metrics_seams, [&assigner] { assigner.StartWorkers(); }, leadership);
  WaitForSignalOr(leadership.lost, stop_signals);
  return StopCentral(parts, leadership, health);
}

}  // namespace hotplug::controller

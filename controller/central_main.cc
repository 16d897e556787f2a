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
  ApiParts api;
  std::unique_ptr<kube::NodeAssigner> assigner;
};

bool BuildCentral(const Flags& flags, const MetricsSeams& metrics, const reconciler::Clock& clock,
                  CentralParts* parts) {
  // The pool: the watch stream, the workers' writes, events, the lease, the presence poll.
  ApiRole role;
  role.component = "hotplug-operator-central";
  role.threads_besides_workers = 5;
  if (!ConnectApi(flags, metrics, role, &parts->api)) return false;
  log::Info("central node assigner", {{"server", parts->api.config.server},
                                      {"agentLeases", flags.agent_lease_namespace},
                                      {"namespace", flags.ns.empty() ? "*" : flags.ns}});
  parts->assigner = std::make_unique<kube::NodeAssigner>(
      *parts->api.client, *parts->api.informer, *parts->api.events, clock,
      kube::NodeAssigner::Options{.lease_namespace = flags.agent_lease_namespace,
                                  .workers = flags.workers,
                                  .presence_poll = std::chrono::seconds(5)});
  return true;
}

// The workers finish, queued Events are sent for a moment, the lease is handed over.
int StopCentral(CentralParts& parts, Leadership& leadership, HealthServer& health) {
  auto deadline = std::chrono::steady_clock::now() + kShutdownDeadline;
  bool drained = parts.assigner->Stop(deadline);
  FlushAndStopEvents(*parts.api.events, deadline);
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
      flags, parts.api.config, metrics_seams, [&assigner] { assigner.StartWorkers(); }, leadership);
  WaitForSignalOr(leadership.lost, stop_signals);
  return StopCentral(parts, leadership, health);
}

}  // namespace hotplug::controller

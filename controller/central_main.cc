#include "controller/central_main.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "controller/health.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/event_recorder.h"
#include "controller/kube/informer.h"
#include "controller/kube/leader_election.h"
#include "controller/kube/node_assigner.h"
#include "controller/log.h"
#include "reconciler/clock.h"

#ifdef HOTPLUG_HAVE_METRICS
#include "controller/metrics.h"
#endif

#ifndef HOTPLUG_VERSION
#define HOTPLUG_VERSION "unknown"
#endif

namespace hotplug::controller {
namespace {

constexpr auto kShutdownDeadline = std::chrono::seconds(25);

int WaitForSignalOr(const std::atomic<bool>& give_up, const sigset_t& signals) {
  while (!give_up.load()) {
    timespec tick{0, 200'000'000};
    int signal_number = sigtimedwait(&signals, nullptr, &tick);
    if (signal_number > 0) return signal_number;
  }
  return 0;
}

std::unique_ptr<kube::Client> MakeClient(const kube::Config& config, std::chrono::seconds timeout,
                                         kube::ClientMetrics* metrics) {
  return std::make_unique<kube::Client>(
      config, kube::Client::Options{
                  .request_timeout = timeout,
                  .user_agent = std::string("hotplug-operator/") + HOTPLUG_VERSION,
                  .metrics = metrics});
}

}  // namespace

int RunCentral(const Flags& flags, const sigset_t& stop_signals) {
  std::string error;
  reconciler::SystemClock clock;
#ifdef HOTPLUG_HAVE_METRICS
  PrometheusMetrics metrics(HOTPLUG_VERSION, clock);
  if (flags.metrics_bind_address != "0") {
    if (!metrics.Serve(flags.metrics_bind_address, &error)) {
      log::Error("cannot serve metrics", {{"error", error}});
      return 1;
    }
    log::Info("metrics server listening", {{"address", flags.metrics_bind_address},
                                           {"port", std::to_string(metrics.port())}});
  }
  ControllerMetrics* controller_metrics = &metrics;
  kube::InformerMetrics* informer_metrics = &metrics;
  kube::ClientMetrics* client_metrics = &metrics;
#else
  ControllerMetrics* controller_metrics = nullptr;
  kube::InformerMetrics* informer_metrics = nullptr;
  kube::ClientMetrics* client_metrics = nullptr;
#endif

  kube::Config config;
  if (!kube::LoadConfig(flags.kubeconfig, &config, &error)) {
    log::Error("cannot load the Kubernetes configuration", {{"error", error}});
    return 1;
  }
  log::Info("central node assigner", {{"server", config.server},
                                      {"agentLeases", flags.agent_lease_namespace},
                                      {"namespace", flags.ns.empty() ? "*" : flags.ns}});
  // The pool: the watch stream, the workers' writes, events, the lease, the presence poll.
  kube::InitHttpThreadPool(static_cast<size_t>(5 + flags.workers));
  std::unique_ptr<kube::Client> client =
      MakeClient(config, std::chrono::seconds(15), client_metrics);
  kube::Informer::Options informer_options;
  informer_options.ns = flags.ns;
  informer_options.metrics = informer_metrics;
  kube::Informer informer(*client, informer_options);
  kube::KubeEventRecorder events(
      *client, kube::KubeEventRecorder::Options{.component = "hotplug-operator-central",
                                                .host = "",
                                                .queue_limit = 1000,
                                                .remembered = 4096});
  kube::NodeAssigner assigner(*client, informer, events, clock,
                              kube::NodeAssigner::Options{
                                  .lease_namespace = flags.agent_lease_namespace,
                                  .workers = flags.workers,
                                  .presence_poll = std::chrono::seconds(5)});

  HealthServer health([&assigner] { return assigner.HasSynced(); });
  if (flags.health_probe_bind_address != "0") {
    if (!health.Start(flags.health_probe_bind_address, &error)) {
      log::Error("cannot serve health probes", {{"error", error}});
      return 1;
    }
    log::Info("health server listening", {{"address", health.bound_address()},
                                          {"port", std::to_string(health.port())}});
  }

  assigner.Start();
  std::atomic<bool> leadership_lost{false};
  std::unique_ptr<kube::Client> lease_client;
  std::unique_ptr<kube::LeaderElector> elector;
  if (flags.leader_elect) {
    std::string lease_namespace = flags.leader_elect_namespace;
    if (lease_namespace.empty()) lease_namespace = config.default_namespace;
    if (lease_namespace.empty()) lease_namespace = "default";
    // As main.cc: the lease's requests time out within the renew deadline.
    lease_client = MakeClient(
        config,
        std::max<std::chrono::seconds>(std::chrono::seconds(1),
                                       std::chrono::duration_cast<std::chrono::seconds>(
                                           flags.renew_deadline / 2)),
        client_metrics);
    elector = std::make_unique<kube::LeaderElector>(
        *lease_client,
        kube::LeaderElector::Options{.ns = lease_namespace,
                                     .name = flags.leader_elect_id,
                                     .identity = kube::LeaderElector::DefaultIdentity(),
                                     .lease_duration = flags.lease_duration,
                                     .renew_deadline = flags.renew_deadline,
                                     .retry_period = flags.retry_period});
    if (controller_metrics) controller_metrics->Leading(false);
    elector->Start(
        [&assigner, controller_metrics] {
          if (controller_metrics) controller_metrics->Leading(true);
          assigner.StartWorkers();
        },
        [&leadership_lost, controller_metrics] {
          if (controller_metrics) controller_metrics->Leading(false);
          leadership_lost = true;
        });
  } else {
    if (controller_metrics) controller_metrics->Leading(true);
    assigner.StartWorkers();
  }

  int signal_number = WaitForSignalOr(leadership_lost, stop_signals);
  if (signal_number > 0) {
    log::Info("stopping", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  } else {
    log::Error("stopping: leadership lost; another replica takes over");
  }
  auto deadline = std::chrono::steady_clock::now() + kShutdownDeadline;
  bool drained = assigner.Stop(deadline);
  events.Flush(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(3)));
  events.Stop();
  if (elector) elector->Stop();  // releases the lease after the workers are done
  health.Stop();
  if (!drained) {
    log::Error("a worker did not finish before the shutdown deadline; exiting anyway");
    std::fflush(nullptr);
    std::_Exit(1);
  }
  log::Info("stopped", {{"labels", std::to_string(assigner.labels_written())},
                        {"reports", std::to_string(assigner.reports_written())}});
  return leadership_lost ? 1 : 0;
}

}  // namespace hotplug::controller

#include "controller/process_parts.h"

#include <algorithm>
#include <string>

#include "controller/log.h"

#ifndef HOTPLUG_VERSION
#define HOTPLUG_VERSION "unknown"
#endif

namespace hotplug::controller {

sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

int WaitForSignalOr(const std::atomic<bool>& give_up, const sigset_t& signals) {
  int signal_number = 0;
  while (!give_up.load() && signal_number <= 0) {
    timespec tick{0, 200'000'000};
    signal_number = sigtimedwait(&signals, nullptr, &tick);
  }
  if (signal_number > 0) {
    log::Info("stopping: finishing the steps in flight",
              {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
    return signal_number;
  }
  log::Error("stopping: leadership lost; another replica takes over");
  return 0;
}

kube::Client::Options ClientOptions(std::chrono::seconds timeout, const MetricsSeams& metrics) {
  return kube::Client::Options{.request_timeout = timeout,
                               .user_agent = std::string("hotplug-operator/") + HOTPLUG_VERSION,
                               .metrics = metrics.client};
}

void StartWorkersOrElect(const Flags& flags, const kube::Config& config,
                         const MetricsSeams& metrics, const std::function<void()>& start_workers,
                         Leadership& leadership) {
  ControllerMetrics* reporter = metrics.controller;
  if (!flags.leader_elect) {
    if (reporter) reporter->Leading(true);
    start_workers();
    return;
  }
  std::string lease_namespace = flags.leader_elect_namespace;
  if (lease_namespace.empty()) lease_namespace = config.default_namespace;
  if (lease_namespace.empty()) lease_namespace = "default";
  // Lease requests get their own client whose timeout fits inside the renew deadline, so a
  // hung renewal cannot hold leadership past it.
  auto lease_timeout = std::max<std::chrono::seconds>(
      std::chrono::seconds(1),
      std::chrono::duration_cast<std::chrono::seconds>(flags.renew_deadline / 2));
  leadership.lease_client =
      std::make_unique<kube::Client>(config, ClientOptions(lease_timeout, metrics));
  leadership.elector = std::make_unique<kube::LeaderElector>(
      *leadership.lease_client,
      kube::LeaderElector::Options{.ns = lease_namespace,
                                   .name = flags.leader_elect_id,
                                   .identity = kube::LeaderElector::DefaultIdentity(),
                                   .lease_duration = flags.lease_duration,
                                   .renew_deadline = flags.renew_deadline,
                                   .retry_period = flags.retry_period});
  if (reporter) reporter->Leading(false);
  leadership.elector->Start(
      [start_workers, reporter] {
        if (reporter) reporter->Leading(true);
        start_workers();
      },
      [&leadership, reporter] {
        if (reporter) reporter->Leading(false);
        leadership.lost = true;
      });
}

bool ConnectApi(const Flags& flags, const MetricsSeams& metrics, const ApiRole& role,
                ApiParts* parts) {
  std::string error;
  if (!kube::LoadConfig(flags.kubeconfig, &parts->config, &error)) {
    log::Error("cannot load the Kubernetes configuration", {{"error", error}});
    return false;
  }
  log::Info("Kubernetes API", {{"server", parts->config.server}, {"from", parts->config.origin}});
  kube::InitHttpThreadPool(role.threads_besides_workers + static_cast<size_t>(flags.workers));
  parts->client = std::make_unique<kube::Client>(parts->config,
                                                 ClientOptions(std::chrono::seconds(15), metrics));
  kube::Informer::Options informer_options;
  informer_options.ns = flags.ns;
  informer_options.node_name = role.node_name;
  informer_options.watch_timeout =
      std::chrono::duration_cast<std::chrono::seconds>(flags.watch_timeout);
  informer_options.metrics = metrics.informer;
  parts->informer = std::make_unique<kube::Informer>(*parts->client, informer_options);
  kube::KubeEventRecorder::Options event_options;
  event_options.component = role.component;
  event_options.host = role.node_name;
  event_options.queue_limit = 1000;
  event_options.remembered = 4096;
  parts->events = std::make_unique<kube::KubeEventRecorder>(*parts->client, event_options);
  return true;
}

void FlushAndStopEvents(kube::KubeEventRecorder& events,
                        std::chrono::steady_clock::time_point deadline) {
  events.Flush(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(3)));
  events.Stop();
}

namespace {

// Logs how serving `what` (by the `server`) went: where it listens, or why it cannot.
bool Served(bool ok, const std::string& what, const std::string& server, const std::string& error,
            const std::string& address, int port) {
  if (!ok) {
    log::Error("cannot serve " + what, {{"error", error}});
    return false;
  }
  log::Info(server + " server listening", {{"address", address}, {"port", std::to_string(port)}});
  return true;
}

}  // namespace

bool ServeHealth(const Flags& flags, HealthServer& health) {
  if (flags.health_probe_bind_address == "0") return true;
  std::string error;
  bool ok = health.Start(flags.health_probe_bind_address, &error);
  return Served(ok, "health probes", "health", error, ok ? health.bound_address() : "",
                ok ? health.port() : 0);
}

bool ServeMetrics(const Flags& flags, PrometheusMetrics& metrics) {
  if (flags.metrics_bind_address == "0") return true;
  std::string error;
  bool ok = metrics.Serve(flags.metrics_bind_address, &error);
  return Served(ok, "metrics", "metrics", error, flags.metrics_bind_address,
                ok ? metrics.port() : 0);
}

}  // namespace hotplug::controller

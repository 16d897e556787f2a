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

bool ServeHealth(const Flags& flags, HealthServer& health) {
  if (flags.health_probe_bind_address == "0") return true;
  std::string error;
  if (!health.Start(flags.health_probe_bind_address, &error)) {
    log::Error("cannot serve health probes", {{"error", error}});
    return false;
  }
  log::Info("health server listening",
            {{"address", health.bound_address()}, {"port", std::to_string(health.port())}});
  return true;
}

bool ServeMetrics(const Flags& flags, PrometheusMetrics& metrics) {
  if (flags.metrics_bind_address == "0") return true;
  std::string error;
  if (!metrics.Serve(flags.metrics_bind_address, &error)) {
    log::Error("cannot serve metrics", {{"error", error}});
    return false;
  }
  log::Info("metrics server listening",
            {{"address", flags.metrics_bind_address}, {"port", std::to_string(metrics.port())}});
  return true;
}

}  // namespace hotplug::controller

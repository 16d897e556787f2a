// hotplug-operator (and hotplug-operator-testing): the process. Parses flags, builds the
// hypervisor backend --hypervisor names from those the executable registers
// (hypervisor_backend.h: RegisteredBackends), the Kubernetes side (informer, status writer, event
// recorder, leader election), runs the controller's work loop, serves health probes, and stops
// gracefully on SIGTERM/SIGINT.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "controller/controller.h"
#include "controller/flags.h"
#include "controller/health.h"
#include "controller/hypervisor_backend.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/event_recorder.h"
#include "controller/kube/informer.h"
#include "controller/kube/leader_election.h"
#include "controller/kube/status_writer.h"
#include "controller/log.h"
#include "controller/metrics.h"
#include "controller/standalone/standalone.h"
#include "reconciler/clock.h"

#ifndef HOTPLUG_VERSION
#define HOTPLUG_VERSION "unknown"
#endif

namespace hotplug::controller {
namespace {

constexpr auto kShutdownDeadline = std::chrono::seconds(25);
constexpr int kExitBadFlags = 2;

// The hypervisor the controller talks to: the backend --hypervisor names, from those this
// executable registers (hypervisor_backend.h). Null when it cannot be built.
std::shared_ptr<backends::Hypervisor> BuildHypervisor(const HypervisorBackends& backends,
                                                      const Flags& flags, std::string* error) {
  for (const auto& backend : backends) {
    if (backend->kind() == flags.hypervisor) return backend->Build(flags, error);
  }
  *error = "no backend " + flags.hypervisor;  // ParseFlags refuses such a --hypervisor
  return nullptr;
}

// Waits for SIGTERM/SIGINT (blocked in every thread, taken here) or for `give_up`.
// Returns the signal number, or 0 when `give_up` became true.
int WaitForSignalOr(const std::atomic<bool>& give_up, const sigset_t& signals) {
  while (!give_up.load()) {
    timespec tick{0, 200'000'000};
    int signal_number = sigtimedwait(&signals, nullptr, &tick);
    if (signal_number > 0) return signal_number;
  }
  return 0;
}

// The measurement seams.
struct MetricsSeams {
  ControllerMetrics* controller = nullptr;
  kube::InformerMetrics* informer = nullptr;
  kube::ClientMetrics* client = nullptr;
};

// Where objects come from and where their status and Events go: Kubernetes, or a folder;
// with whatever that needs kept alive.
struct Seams {
  ObjectSource* source = nullptr;
  StatusWriter* status_writer = nullptr;
  EventRecorder* events = nullptr;
  kube::Config config;
  std::unique_ptr<kube::Client> client;
  std::unique_ptr<kube::Informer> informer;
  std::unique_ptr<kube::KubeStatusWriter> kube_status_writer;
  std::unique_ptr<kube::KubeEventRecorder> kube_events;
  std::unique_ptr<standalone::StandaloneMode> folder;
};

// Leader election, when asked for: the lease's own client, the elector, and whether the
// lease was lost (the process then exits so that another replica takes over).
struct Leadership {
  std::atomic<bool> lost{false};
  std::unique_ptr<kube::Client> lease_client;
  std::unique_ptr<kube::LeaderElector> elector;
};

// Blocks the stop signals before any thread starts, so only WaitForSignalOr sees them.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

kube::Client::Options ClientOptions(std::chrono::seconds timeout, const MetricsSeams& metrics) {
  return kube::Client::Options{.request_timeout = timeout,
                               .user_agent = std::string("hotplug-operator/") + HOTPLUG_VERSION,
                               .metrics = metrics.client};
}

// --standalone DIR: the folder's source, status files and event log. Exit code or 0.
int UseFolder(const Flags& flags, Seams* seams) {
  if (flags.leader_elect) {
    log::Error("--leader-elect needs Kubernetes; it cannot be used with --standalone");
    return 2;
  }
  std::string error;
  seams->folder = standalone::MakeStandalone(flags.standalone_dir, &error);
  if (!seams->folder) {
    log::Error("cannot use the standalone folder", {{"error", error}});
    return 1;
  }
  log::Info("standalone mode", {{"dir", flags.standalone_dir}});
  seams->source = &seams->folder->source();
  seams->status_writer = &seams->folder->status_writer();
  seams->events = &seams->folder->events();
  return 0;
}

// The Kubernetes API: informer, status writer, event recorder. False when it cannot be used.
bool UseKubernetes(const Flags& flags, const MetricsSeams& metrics, Seams* seams) {
  std::string error;
  if (!kube::LoadConfig(flags.kubeconfig, &seams->config, &error)) {
    log::Error("cannot load the Kubernetes configuration", {{"error", error}});
    return false;
  }
  log::Info("Kubernetes API", {{"server", seams->config.server}, {"from", seams->config.origin}});
  // cpprestsdk's pool: the watch stream, the workers' status writes, events, the lease.
  kube::InitHttpThreadPool(static_cast<size_t>(4 + flags.workers));
  seams->client = std::make_unique<kube::Client>(seams->config,
                                                 ClientOptions(std::chrono::seconds(15), metrics));
  kube::Informer::Options informer_options;
  informer_options.ns = flags.ns;
  informer_options.node_name = flags.node_name;
  informer_options.watch_timeout =
      std::chrono::duration_cast<std::chrono::seconds>(flags.watch_timeout);
  informer_options.metrics = metrics.informer;
  seams->informer = std::make_unique<kube::Informer>(*seams->client, informer_options);
  seams->kube_status_writer =
      std::make_unique<kube::KubeStatusWriter>(*seams->client, seams->informer.get());
  seams->kube_events = std::make_unique<kube::KubeEventRecorder>(
      *seams->client, kube::KubeEventRecorder::Options{.component = "hotplug-operator",
                                                       .host = flags.node_name,
                                                       .queue_limit = 1000,
                                                       .remembered = 4096});
  seams->source = seams->informer.get();
  seams->status_writer = seams->kube_status_writer.get();
  seams->events = seams->kube_events.get();
  return true;
}

// A folder with --standalone, else Kubernetes. The process's exit code, or 0.
int BuildSeams(const Flags& flags, const MetricsSeams& metrics, Seams* seams) {
  if (!flags.standalone_dir.empty()) return UseFolder(flags, seams);
  return UseKubernetes(flags, metrics, seams) ? 0 : 1;
}

Controller::Options ControllerOptions(const Flags& flags, const MetricsSeams& metrics) {
  Controller::Options options;
  options.workers = flags.workers;
  options.resync_period = flags.resync_period;
  options.autoscale.sample_period = flags.autoscale_sample_period;
  options.autoscale.load_window = flags.autoscale_load_window;
  options.reconciler.hooks_dir = flags.hooks_dir;
  options.reconciler.hook_timeout = flags.hook_timeout;
  options.metrics = metrics.controller;
  return options;
}

// Without --leader-elect the workers start at once; with it, while this replica leads.
void StartWorkersOrElect(const Flags& flags, const kube::Config& config,
                         const MetricsSeams& metrics, Controller& controller,
                         Leadership& leadership) {
  ControllerMetrics* reporter = metrics.controller;
  if (!flags.leader_elect) {
    if (reporter) reporter->Leading(true);
    controller.StartWorkers();
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
      [&controller, reporter] {
        if (reporter) reporter->Leading(true);
        controller.StartWorkers();
      },
      [&leadership, reporter] {
        if (reporter) reporter->Leading(false);
        leadership.lost = true;
      });
}

// Graceful stop: the steps in flight finish and write their status, queued Events are sent
// for a moment, the lease is handed over. The exit code.
int Shutdown(Controller& controller, Seams& seams, Leadership& leadership, HealthServer& health) {
  auto deadline = std::chrono::steady_clock::now() + kShutdownDeadline;
  bool drained = controller.Stop(deadline);
  if (seams.kube_events) {
    seams.kube_events->Flush(
        std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(3)));
    seams.kube_events->Stop();
  }
  if (leadership.elector) leadership.elector->Stop();  // after the workers are done
  health.Stop();
  if (!drained) {
    log::Error("a worker did not finish before the shutdown deadline; exiting anyway");
    std::fflush(nullptr);
    std::_Exit(1);
  }
  log::Info("stopped", {{"passes", std::to_string(controller.passes())},
                        {"statusWrites", std::to_string(controller.status_writes())}});
  return leadership.lost ? 1 : 0;
}

// /healthz and /readyz, unless --health-probe-bind-address=0. False when they cannot be served.
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

int Run(const HypervisorBackends& backends, const Flags& flags) {
  log::Level level;
  log::ParseLevel(flags.log_level, &level);
  log::SetLevel(level);
  const sigset_t stop_signals = BlockStopSignals();
  log::Info("hotplug-operator starting", {{"version", HOTPLUG_VERSION},
                                          {"hypervisor", flags.hypervisor},
                                          {"node", flags.node_name},
                                          {"namespace", flags.ns.empty() ? "*" : flags.ns}});
  std::string error;
  std::shared_ptr<backends::Hypervisor> hypervisor = BuildHypervisor(backends, flags, &error);
  if (!hypervisor) {
    log::Error("cannot set up the hypervisor", {{"error", error}});
    return 1;
  }
  reconciler::SystemClock clock;
  // One object behind every measurement seam, served on its own port.
  PrometheusMetrics metrics(HOTPLUG_VERSION, clock);
  if (flags.metrics_bind_address != "0") {
    if (!metrics.Serve(flags.metrics_bind_address, &error)) {
      log::Error("cannot serve metrics", {{"error", error}});
      return 1;
    }
    log::Info("metrics server listening",
              {{"address", flags.metrics_bind_address}, {"port", std::to_string(metrics.port())}});
  }
  MetricsSeams metrics_seams = {&metrics, &metrics, &metrics};
  Seams seams;
  if (int exit_code = BuildSeams(flags, metrics_seams, &seams); exit_code != 0) return exit_code;
  MeteredSource metered_source(*seams.source, metrics);
  MeteredStatusWriter metered_status_writer(*seams.status_writer, metrics);
  seams.source = &metered_source;
  seams.status_writer = &metered_status_writer;
  Controller controller(*seams.source, *seams.status_writer, *seams.events, *hypervisor, clock,
                        ControllerOptions(flags, metrics_seams));
  HealthServer health([&controller] { return controller.HasSynced(); });
  if (!ServeHealth(flags, health)) return 1;
  controller.Start();
  Leadership leadership;
  StartWorkersOrElect(flags, seams.config, metrics_seams, controller, leadership);
  if (int signal_number = WaitForSignalOr(leadership.lost, stop_signals); signal_number > 0) {
    log::Info("stopping: finishing the steps in flight",
              {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  } else {
    log::Error("stopping: leadership lost; another replica takes over");
  }
  return Shutdown(controller, seams, leadership, health);
}

}  // namespace
}  // namespace hotplug::controller

int main(int argc, char** argv) {
  using namespace hotplug::controller;
  std::vector<std::string> args(argv + 1, argv + argc);
  HypervisorBackends backends = RegisteredBackends();
  Flags flags;
  std::string error;
  switch (ParseFlags(args, backends, &flags, &error)) {
    case ParseOutcome::kHelp:
      std::cout << HelpText(backends);
      return 0;
    case ParseOutcome::kVersion:
      std::cout << "hotplug-operator " << HOTPLUG_VERSION << "\n";
      return 0;
    case ParseOutcome::kError:
      std::cerr << "hotplug-operator: " << error << "\n";
      return kExitBadFlags;
    case ParseOutcome::kRun:
      break;
  }
  return Run(backends, flags);
}

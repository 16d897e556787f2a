// hotplug-operator (and hotplug-operator-testing): the process. Parses flags, builds the
// hypervisor backend --hypervisor names from those the executable registers
// (hypervisor_backend.h: RegisteredBackends), the Kubernetes side (informer, status writer, event
// recorder, leader election), runs the controller's work loop, serves health probes, and stops
// gracefully on SIGTERM/SIGINT.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "controller/central_main.h"
#include "controller/controller.h"
#include "controller/flags.h"
#include "controller/health.h"
#include "controller/hypervisor_backend.h"
#include "controller/kube/agent_lease.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/event_recorder.h"
#include "controller/kube/informer.h"
#include "controller/kube/leader_election.h"
#include "controller/kube/status_writer.h"
#include "controller/log.h"
#include "controller/malloc_tuning.h"
#include "controller/metrics.h"
#include "controller/process_parts.h"
#include "controller/standalone/standalone.h"
#include "reconciler/clock.h"

#ifndef HOTPLUG_VERSION
#define HOTPLUG_VERSION "unknown"
#endif

namespace hotplug::controller {
namespace {

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

// Where objects come from and where their status and Events go: Kubernetes, or a folder;
// with whatever that needs kept alive.
struct Seams {
  ObjectSource* source = nullptr;
  StatusWriter* status_writer = nullptr;
  EventRecorder* events = nullptr;
  ApiParts api;
  std::unique_ptr<kube::KubeStatusWriter> kube_status_writer;
  // An agent's own Lease (controller/kube/agent_lease.h): tells the central assigner it runs.
  std::unique_ptr<kube::AgentLease> agent_lease;
  std::unique_ptr<standalone::StandaloneMode> folder;
};

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
  // cpprestsdk's pool: the watch stream, the workers' status writes, events, the lease.
  ApiRole role;
  role.component = "hotplug-operator";
  role.node_name = flags.node_name;
  role.threads_besides_workers = 4;
  if (!ConnectApi(flags, metrics, role, &seams->api)) return false;
  seams->kube_status_writer =
      std::make_unique<kube::KubeStatusWriter>(*seams->api.client, seams->api.informer.get());
  seams->source = seams->api.informer.get();
  seams->status_writer = seams->kube_status_writer.get();
  seams->events = seams->api.events.get();
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
  // The scope of this process's claims: a claim of the same scope whose owner is missing from
  // this process's cache is stale (reconciler::Options::claim_is_stale).
  if (!flags.standalone_dir.empty()) {
    std::error_code ignored;
    options.reconciler.claim_manager =
        "standalone:" + std::filesystem::absolute(flags.standalone_dir, ignored).string();
  } else if (!flags.node_name.empty()) {
    options.reconciler.claim_manager = "node/" + flags.node_name;
  }
  options.metrics = metrics.controller;
  return options;
}

// An agent (--node-name with --agent-lease-namespace, against Kubernetes) renews its Lease.
void StartAgentLease(const Flags& flags, Seams& seams) {
  if (!seams.api.client || flags.node_name.empty() || flags.agent_lease_namespace.empty()) return;
  seams.agent_lease = std::make_unique<kube::AgentLease>(
      *seams.api.client,
      kube::AgentLease::Options{.ns = flags.agent_lease_namespace,
                                .node = flags.node_name,
                                .identity = kube::LeaderElector::DefaultIdentity()});
  seams.agent_lease->Start();
}

// Graceful stop: the steps in flight finish and write their status, queued Events are sent
// for a moment, the lease is handed over. The exit code.
int Shutdown(Controller& controller, Seams& seams, Leadership& leadership, HealthServer& health) {
  auto deadline = std::chrono::steady_clock::now() + kShutdownDeadline;
  bool drained = controller.Stop(deadline);
  if (seams.api.events) FlushAndStopEvents(*seams.api.events, deadline);
  if (leadership.elector) leadership.elector->Stop();  // after the workers are done
  if (seams.agent_lease) seams.agent_lease->Stop();
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

int Run(const HypervisorBackends& backends, const Flags& flags) {
  log::Level level;
  log::ParseLevel(flags.log_level, &level);
  log::SetLevel(level);
  const sigset_t stop_signals = BlockStopSignals();
  log::Info("hotplug-operator starting", {{"version", HOTPLUG_VERSION},
                                          {"hypervisor", flags.hypervisor},
                                          {"node", flags.node_name},
                                          {"namespace", flags.ns.empty() ? "*" : flags.ns}});
  if (flags.assign_nodes) return RunCentral(flags, stop_signals);
  std::string error;
  std::shared_ptr<backends::Hypervisor> hypervisor = BuildHypervisor(backends, flags, &error);
  if (!hypervisor) {
    log::Error("cannot set up the hypervisor", {{"error", error}});
    return 1;
  }
  reconciler::SystemClock clock;
  // One object behind every measurement seam, served on its own port.
  PrometheusMetrics metrics(HOTPLUG_VERSION, clock);
  if (!ServeMetrics(flags, metrics)) return 1;
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
  StartAgentLease(flags, seams);
  Leadership leadership;
  StartWorkersOrElect(
      flags, seams.api.config, metrics_seams, [&controller] { controller.StartWorkers(); },
      leadership);
  WaitForSignalOr(leadership.lost, stop_signals);
  return Shutdown(controller, seams, leadership, health);
}

}  // namespace
}  // namespace hotplug::controller

int main(int argc, char** argv) {
  using namespace hotplug::controller;
  TuneMallocForLongRunning();
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

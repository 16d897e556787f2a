// hotplug-operator: the process. Parses flags, builds the hypervisor backend and the
// Kubernetes side (informer, status writer, event recorder, leader election), runs the
// controller's work loop, serves health probes, and stops gracefully on SIGTERM/SIGINT.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backends/fake/fake_hypervisor.h"
#include "controller/central_main.h"
#include "controller/controller.h"
#include "controller/fake_setup.h"
#include "controller/flags.h"
#include "controller/health.h"
#include "controller/kube/agent_lease.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/event_recorder.h"
#include "controller/kube/informer.h"
#include "controller/kube/leader_election.h"
#include "controller/kube/status_writer.h"
#include "controller/log.h"
#include "controller/malloc_tuning.h"
#include "reconciler/clock.h"

#ifdef HOTPLUG_HAVE_LIBVIRT
#include "backends/libvirt/libvirt_hypervisor.h"
#endif
#ifdef HOTPLUG_HAVE_METRICS
#include "controller/metrics.h"
#endif
#ifdef HOTPLUG_HAVE_STANDALONE
#include "controller/standalone/standalone.h"
#endif

#ifndef HOTPLUG_VERSION
#define HOTPLUG_VERSION "unknown"
#endif

namespace hotplug::controller {
namespace {

constexpr auto kShutdownDeadline = std::chrono::seconds(25);
constexpr int kExitBadFlags = 2;

FlagFeatures BuildFeatures() {
  FlagFeatures features;
#ifdef HOTPLUG_HAVE_LIBVIRT
  features.libvirt = true;
#endif
#ifdef HOTPLUG_HAVE_METRICS
  features.metrics = true;
#endif
#ifdef HOTPLUG_HAVE_STANDALONE
  features.standalone = true;
#endif
  return features;
}

bool ReadWholeFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

// The hypervisor the controller talks to, with whatever it needs kept alive.
struct HypervisorStack {
  std::unique_ptr<backends::fake::FakeHypervisor> fake;
  std::unique_ptr<backends::Hypervisor> real;
  std::unique_ptr<CallLoggingHypervisor> logging;
  backends::Hypervisor* active = nullptr;
};

bool BuildHypervisor(const Flags& flags, HypervisorStack* stack, std::string* error) {
  if (flags.hypervisor == "libvirt") {
#ifdef HOTPLUG_HAVE_LIBVIRT
    backends::libvirt::LibvirtOptions options;
    options.uri = flags.libvirt_uri;
    stack->real = std::make_unique<backends::libvirt::LibvirtHypervisor>(options);
    stack->active = stack->real.get();
    log::Info("hypervisor: libvirt", {{"uri", flags.libvirt_uri}});
    return true;
#else
    *error = "this build has no libvirt backend";
    return false;
#endif
  }
  stack->fake = std::make_unique<backends::fake::FakeHypervisor>();
  std::vector<backends::fake::DomainSpec> domains = NumberedFakeDomains(flags.fake_domains);
  if (!flags.fake_domains_file.empty()) {
    std::string text;
    if (!ReadWholeFile(flags.fake_domains_file, &text)) {
      *error = "--fake-domains-file: cannot read " + flags.fake_domains_file;
      return false;
    }
    if (!ParseFakeDomains(text, &domains, error)) {
      *error = "--fake-domains-file " + flags.fake_domains_file + ": " + *error;
      return false;
    }
  }
  for (const auto& domain : domains) stack->fake->AddDomain(domain);
  if (flags.fake_vcpu_latency.count() > 0) {
    stack->fake->SetLatency(std::chrono::microseconds(0),
                            std::chrono::duration_cast<std::chrono::microseconds>(
                                flags.fake_vcpu_latency));
  }
  stack->active = stack->fake.get();
  if (!flags.fake_call_log.empty()) {
    stack->logging = std::make_unique<CallLoggingHypervisor>(*stack->fake, flags.fake_call_log);
    int replayed = 0;
    std::string replay_error;
    if (!stack->logging->Open(&replayed, &replay_error)) {
      *error = "--fake-call-log: " + replay_error;
      return false;
    }
    log::Info("fake hypervisor: replayed the call log",
              {{"file", flags.fake_call_log}, {"changes", std::to_string(replayed)}});
    if (!replay_error.empty()) {
      log::Warn("fake hypervisor: a logged change did not replay", {{"error", replay_error}});
    }
    stack->active = stack->logging.get();
  }
  log::Info("hypervisor: fake", {{"domains", std::to_string(domains.size())}});
  return true;
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

int Run(const Flags& flags) {
  log::Level level;
  log::ParseLevel(flags.log_level, &level);
  log::SetLevel(level);

  // Block the stop signals before any thread starts, so only WaitForSignalOr sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  log::Info("hotplug-operator starting", {{"version", HOTPLUG_VERSION},
                                          {"hypervisor", flags.hypervisor},
                                          {"node", flags.node_name},
                                          {"namespace", flags.ns.empty() ? "*" : flags.ns}});
  if (flags.assign_nodes) return RunCentral(flags, stop_signals);

  HypervisorStack hypervisor;
  std::string error;
  if (!BuildHypervisor(flags, &hypervisor, &error)) {
    log::Error("cannot set up the hypervisor", {{"error", error}});
    return 1;
  }

  reconciler::SystemClock clock;

  // Metrics: one object behind every measurement seam, served on its own port.
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

  // Where objects come from and where their status and Events go: Kubernetes, or a folder.
  ObjectSource* source = nullptr;
  StatusWriter* status_writer = nullptr;
  EventRecorder* event_recorder = nullptr;
  kube::Config config;
  std::unique_ptr<kube::Client> client;
  std::unique_ptr<kube::Informer> informer;
  std::unique_ptr<kube::KubeStatusWriter> kube_status_writer;
  std::unique_ptr<kube::KubeEventRecorder> kube_events;
#ifdef HOTPLUG_HAVE_STANDALONE
  std::unique_ptr<standalone::StandaloneMode> folder;
  if (!flags.standalone_dir.empty()) {
    if (flags.leader_elect) {
      log::Error("--leader-elect needs Kubernetes; it cannot be used with --standalone");
      return 2;
    }
    folder = standalone::MakeStandalone(flags.standalone_dir, &error);
    if (!folder) {
      log::Error("cannot use the standalone folder", {{"error", error}});
      return 1;
    }
    log::Info("standalone mode", {{"dir", flags.standalone_dir}});
    source = &folder->source();
    status_writer = &folder->status_writer();
    event_recorder = &folder->events();
  }
#endif
  if (source == nullptr) {
    if (!kube::LoadConfig(flags.kubeconfig, &config, &error)) {
      log::Error("cannot load the Kubernetes configuration", {{"error", error}});
      return 1;
    }
    log::Info("Kubernetes API", {{"server", config.server}, {"from", config.origin}});
    // cpprestsdk's pool: the watch stream, the workers' status writes, events, the lease.
    kube::InitHttpThreadPool(static_cast<size_t>(4 + flags.workers));
    client = std::make_unique<kube::Client>(
        config, kube::Client::Options{
                    .request_timeout = std::chrono::seconds(15),
                    .user_agent = std::string("hotplug-operator/") + HOTPLUG_VERSION,
                    .metrics = client_metrics});
    kube::Informer::Options informer_options;
    informer_options.ns = flags.ns;
    informer_options.node_name = flags.node_name;
    informer_options.metrics = informer_metrics;
    informer = std::make_unique<kube::Informer>(*client, informer_options);
    kube_status_writer = std::make_unique<kube::KubeStatusWriter>(*client, informer.get());
    kube_events = std::make_unique<kube::KubeEventRecorder>(
        *client, kube::KubeEventRecorder::Options{.component = "hotplug-operator",
                                                  .host = flags.node_name,
                                                  .queue_limit = 1000,
                                                  .remembered = 4096});
    source = informer.get();
    status_writer = kube_status_writer.get();
    event_recorder = kube_events.get();
  }
#ifdef HOTPLUG_HAVE_METRICS
  MeteredSource metered_source(*source, metrics);
  MeteredStatusWriter metered_status_writer(*status_writer, metrics);
  source = &metered_source;
  status_writer = &metered_status_writer;
#endif

  Controller::Options options;
  options.workers = flags.workers;
  options.resync_period = flags.resync_period;
  options.reconciler.hooks_dir = flags.hooks_dir;
  options.reconciler.hook_timeout = flags.hook_timeout;
  options.metrics = controller_metrics;
  Controller controller(*source, *status_writer, *event_recorder, *hypervisor.active, clock,
                        options);

  HealthServer health([&controller] { return controller.HasSynced(); });
  if (flags.health_probe_bind_address != "0") {
    if (!health.Start(flags.health_probe_bind_address, &error)) {
      log::Error("cannot serve health probes", {{"error", error}});
      return 1;
    }
    log::Info("health server listening", {{"address", health.bound_address()},
                                          {"port", std::to_string(health.port())}});
  }

  controller.Start();
  // An agent says it runs here (controller/kube/agent_lease.h), for the central assigner.
  std::unique_ptr<kube::AgentLease> agent_lease;
  if (client && !flags.node_name.empty() && !flags.agent_lease_namespace.empty()) {
    agent_lease = std::make_unique<kube::AgentLease>(
        *client, kube::AgentLease::Options{.ns = flags.agent_lease_namespace,
                                           .node = flags.node_name,
                                           .identity = kube::LeaderElector::DefaultIdentity()});
    agent_lease->Start();
  }
  std::atomic<bool> leadership_lost{false};
  std::unique_ptr<kube::Client> lease_client;
  std::unique_ptr<kube::LeaderElector> elector;
  if (flags.leader_elect) {
    std::string lease_namespace = flags.leader_elect_namespace;
    if (lease_namespace.empty()) lease_namespace = config.default_namespace;
    if (lease_namespace.empty()) lease_namespace = "default";
    // Lease requests get their own client whose timeout fits inside the renew deadline, so
    // a hung renewal cannot hold leadership past it.
    auto lease_timeout = std::max<std::chrono::seconds>(
        std::chrono::seconds(1),
        std::chrono::duration_cast<std::chrono::seconds>(flags.renew_deadline / 2));
    lease_client = std::make_unique<kube::Client>(
        config, kube::Client::Options{
                    .request_timeout = lease_timeout,
                    .user_agent = std::string("hotplug-operator/") + HOTPLUG_VERSION,
                    .metrics = client_metrics});
    elector = std::make_unique<kube::LeaderElector>(
        *lease_client, kube::LeaderElector::Options{.ns = lease_namespace,
                                              .name = flags.leader_elect_id,
                                              .identity = kube::LeaderElector::DefaultIdentity(),
                                              .lease_duration = flags.lease_duration,
                                              .renew_deadline = flags.renew_deadline,
                                              .retry_period = flags.retry_period});
    if (controller_metrics) controller_metrics->Leading(false);
    elector->Start(
        [&controller, controller_metrics] {
          if (controller_metrics) controller_metrics->Leading(true);
          controller.StartWorkers();
        },
        [&leadership_lost, controller_metrics] {
          if (controller_metrics) controller_metrics->Leading(false);
          leadership_lost = true;
        });
  } else {
    if (controller_metrics) controller_metrics->Leading(true);
    controller.StartWorkers();
  }

  int signal_number = WaitForSignalOr(leadership_lost, stop_signals);
  if (signal_number > 0) {
    log::Info("stopping: finishing the steps in flight",
              {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  } else {
    log::Error("stopping: leadership lost; another replica takes over");
  }
  auto deadline = std::chrono::steady_clock::now() + kShutdownDeadline;
  bool drained = controller.Stop(deadline);
  if (kube_events) {
    kube_events->Flush(
        std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(3)));
    kube_events->Stop();
  }
  if (elector) elector->Stop();  // releases the lease after the workers are done
  if (agent_lease) agent_lease->Stop();
  health.Stop();
  if (!drained) {
    log::Error("a worker did not finish before the shutdown deadline; exiting anyway");
    std::fflush(nullptr);
    std::_Exit(1);
  }
  log::Info("stopped", {{"passes", std::to_string(controller.passes())},
                        {"statusWrites", std::to_string(controller.status_writes())}});
  return leadership_lost ? 1 : 0;
}

}  // namespace
}  // namespace hotplug::controller

int main(int argc, char** argv) {
  using namespace hotplug::controller;
  TuneMallocForLongRunning();
  std::vector<std::string> args(argv + 1, argv + argc);
  FlagFeatures features = BuildFeatures();
  Flags flags;
  std::string error;
  switch (ParseFlags(args, features, &flags, &error)) {
    case ParseOutcome::kHelp:
      std::cout << HelpText(features);
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
  return Run(flags);
}

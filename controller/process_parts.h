// The parts both processes are assembled from: the agent (main.cc) and the central node
// assigner (central_main.cc). Signals, API clients, leader election, health probes.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include "controller/controller_metrics.h"
#include "controller/flags.h"
#include "controller/health.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/event_recorder.h"
#include "controller/kube/informer.h"
#include "controller/kube/leader_election.h"
#include "controller/metrics.h"

namespace hotplug::controller {

// How long a graceful stop may take before the process exits anyway.
inline constexpr auto kShutdownDeadline = std::chrono::seconds(25);

// The measurement seams.
struct MetricsSeams {
  ControllerMetrics* controller = nullptr;
  kube::InformerMetrics* informer = nullptr;
  kube::ClientMetrics* client = nullptr;
};

// Leader election, when asked for: the lease's own client, the elector, and whether the
// lease was lost (the process then exits so that another replica takes over).
struct Leadership {
  std::atomic<bool> lost{false};
  std::unique_ptr<kube::Client> lease_client;
  std::unique_ptr<kube::LeaderElector> elector;
};

// Blocks the stop signals before any thread starts, so only WaitForSignalOr sees them.
sigset_t BlockStopSignals();

// Waits for SIGTERM/SIGINT (blocked in every thread, taken here) or for `give_up`, and logs
// why the process stops. Returns the signal number, or 0 when `give_up` became true.
int WaitForSignalOr(const std::atomic<bool>& give_up, const sigset_t& signals);

kube::Client::Options ClientOptions(std::chrono::seconds timeout, const MetricsSeams& metrics);

// What each process reads from the Kubernetes API and writes Events with: the configuration
// (--kubeconfig, else in-cluster), one client, the ElasticVM informer (--namespace,
// --watch-timeout), the Event recorder.
struct ApiParts {
  kube::Config config;
  std::unique_ptr<kube::Client> client;
  std::unique_ptr<kube::Informer> informer;
  std::unique_ptr<kube::KubeEventRecorder> events;
};

// Who is connecting: the Events' reporting component, the node an agent serves (its
// informer's label selector and the Events' host; empty for the central assigner), and the
// HTTP threads it needs besides one per worker.
struct ApiRole {
  std::string component;
  std::string node_name;
  size_t threads_besides_workers = 0;
};

// Builds `parts` for `role`. False (logged) when the configuration cannot be loaded.
bool ConnectApi(const Flags& flags, const MetricsSeams& metrics, const ApiRole& role,
                ApiParts* parts);

// Sends the Events still queued for at most 3 s (never past `deadline`), then stops.
void FlushAndStopEvents(kube::KubeEventRecorder& events,
                        std::chrono::steady_clock::time_point deadline);

// Without --leader-elect `start_workers` runs at once; with it, each time this replica
// starts leading.
void StartWorkersOrElect(const Flags& flags, const kube::Config& config,
                         const MetricsSeams& metrics, const std::function<void()>& start_workers,
                         Leadership& leadership);

// /healthz and /readyz, unless --health-probe-bind-address=0. False when they cannot be served.
bool ServeHealth(const Flags& flags, HealthServer& health);

// /metrics, unless --metrics-bind-address=0. False when it cannot be served.
bool ServeMetrics(const Flags& flags, PrometheusMetrics& metrics);

}  // namespace hotplug::controller

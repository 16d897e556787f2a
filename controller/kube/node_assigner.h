// The central node assigner (--assign-nodes): watches every ElasticVM in scope and keeps its
// hotplug.dev/node label equal to its spec.nodeName, so each agent's label-selected watch
// brings it exactly its node's objects. A move waits for the old agent's release; an object
// that names no node, or whose node has no agent (no live Lease, see agent_lease.h), gets
// Ready=False with reason NoNode or NoAgent and a Warning Event. The rules are
// node_scope.h's Assign(); this is the loop that applies them: the informer's changes and
// the agents' comings and goings feed a work queue that `workers` threads drain, only while
// leading (StartWorkers).
#pragma once

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "controller/kube/agent_lease.h"
#include "controller/kube/client.h"
#include "controller/kube/informer.h"
#include "controller/kube/node_scope.h"
#include "controller/source.h"
#include "controller/worker_pool.h"
#include "controller/workqueue.h"
#include "reconciler/clock.h"

namespace hotplug::controller::kube {

class NodeAssigner {
 public:
  struct Options {
    std::string lease_namespace;  // where the agents' Leases are
    int workers = 1;
    std::chrono::milliseconds presence_poll{5'000};
  };
  NodeAssigner(Client& client, Informer& informer, EventRecorder& events,
               const reconciler::Clock& clock, Options options);
  ~NodeAssigner();
  NodeAssigner(const NodeAssigner&) = delete;
  NodeAssigner& operator=(const NodeAssigner&) = delete;

  // Starts the informer and the presence poller; nothing is written until StartWorkers.
  void Start();
  // Starts the workers (the leader). Idempotent.
  void StartWorkers();
  // Lets the write in flight finish, then stops everything. False when a worker was still
  // busy at `deadline`.
  bool Stop(std::chrono::steady_clock::time_point deadline);
  bool HasSynced() const { return informer_.HasSynced(); }

  // What was done (tests, logs).
  int64_t labels_written() const { return labels_written_.load(); }
  int64_t reports_written() const { return reports_written_.load(); }

 private:
  void OnPresenceChanged(const std::set<std::string>& nodes, bool first);
  void Worker();
  // One key: false when it must be tried again with backoff.
  bool Process(const std::string& key);
  bool WriteLabel(const crd::ElasticVM& object, const std::string& node);
  bool WriteReport(const crd::ElasticVM& object, const Assignment& assignment);

  Client& client_;
  Informer& informer_;
  EventRecorder& events_;
  const reconciler::Clock& clock_;
  const Options options_;
  AgentPresence presence_;
  WorkQueue queue_;
  std::atomic<int64_t> labels_written_{0}, reports_written_{0};
  // Last: destroyed first, so every worker has returned before the parts it uses go.
  WorkerPool workers_;  // "assigner-N"
};

}  // namespace hotplug::controller::kube

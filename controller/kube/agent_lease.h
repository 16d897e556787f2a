// Which nodes have a running agent. Each agent renews a coordination.k8s.io/v1 Lease named
// hotplug-agent-<node> (AgentLeaseName) in the agents' namespace, as kubelet renews its
// node's Lease; the central assigner polls those Leases (AgentPresence) to tell an object
// whose node has an agent from one whose node has none (Ready=False, NoAgent).
//
// A Lease counts while it is renewed within its leaseDurationSeconds, measured on the
// reader's own clock from when it saw the renewal (so clocks need not agree), as client-go's
// leader election does. An agent that stops does not give its Lease up: a restart within the
// duration (a rolling update) is seamless, and only an agent gone for longer is reported.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/thread_annotations.h"
#include "controller/kube/client.h"

namespace hotplug::controller::kube {

// A thread named `name` that calls `step` until Stop: again after `period`, or after a second
// when the step failed (returned false) and the period is longer.
class PeriodicThread {
 public:
  ~PeriodicThread();
  void Start(const char* name, std::chrono::milliseconds period, std::function<bool()> step);
  // Waits for a step in progress to end.
  void Stop();

 private:
  std::thread thread_;
  Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
};

class AgentLease {
 public:
  struct Options {
    std::string ns;
    std::string node;
    std::string identity;  // unique per process (LeaderElector::DefaultIdentity)
    std::chrono::seconds duration{40};
    std::chrono::milliseconds renew_period{10'000};
  };
  AgentLease(Client& client, Options options);
  ~AgentLease();

  // Renews on its own thread ("agent-lease") until Stop; a failed renewal is logged and
  // tried again after a second, then at each period.
  void Start();
  void Stop();
  // Renewals that succeeded (tests, logs).
  int renewals() const;

 private:
  bool Renew();

  Client& client_;
  const Options options_;
  PeriodicThread thread_;
  mutable Mutex mu_;
  int renewals_ GUARDED_BY(mu_) = 0;
  // The renewal thread only: the Lease's resourceVersion after our last write.
  std::string resource_version_;
  bool warned_ = false;
};

// Polls the agents' Leases and keeps which nodes have a live agent.
class AgentPresence {
 public:
  struct Options {
    std::string ns;
    std::chrono::milliseconds poll_period{5'000};
  };
  // Called on the presence thread with the nodes whose agent came or went.
  using ChangeHandler = std::function<void(const std::set<std::string>& nodes)>;

  AgentPresence(Client& client, Options options);
  ~AgentPresence();
  void Start(ChangeHandler on_change);
  void Stop();

  // True once one poll succeeded: before that, no node is known to lack an agent.
  bool Known() const;
  bool Alive(const std::string& node) const;

 private:
  struct Seen {
    std::string holder;
    std::string record;  // holder|renewTime as last read
    std::chrono::steady_clock::time_point changed_at;
    std::chrono::seconds duration{0};
  };
  struct Clocks {
    std::chrono::steady_clock::time_point local;
    std::chrono::system_clock::time_point wall;
  };
  bool Poll();
  // The Leases in the namespace; nullopt (logged once per run of failures) when unreadable.
  std::optional<nlohmann::json> ListLeases();
  // An agent's Lease: its node, and `entry` as seen now. nullopt for any other Lease.
  std::optional<std::string> ReadLease(const nlohmann::json& lease, Clocks now,
                                       Seen* entry) const;
  // Makes `alive` the nodes with an agent; returns those that came or went.
  std::set<std::string> Publish(std::set<std::string> alive, bool* first);

  Client& client_;
  const Options options_;
  ChangeHandler on_change_;
  mutable Mutex mu_;
  bool known_ GUARDED_BY(mu_) = false;
  std::set<std::string> alive_ GUARDED_BY(mu_);
  // The presence thread only: by node, the Lease as last read.
  std::map<std::string, Seen> seen_;
  bool failing_ = false;   // the presence thread only: the last poll failed
  PeriodicThread thread_;  // last: joined before the members its step uses go
};

}  // namespace hotplug::controller::kube

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
// acquire when the lease is free or its holder has not renewed within the lease duration
// (measured on our own clock from when we last saw the record change, so clock skew between
// replicas does not matter), renew every retry period, and give up leadership when a renewal
// has not succeeded within the renew deadline. On a clean stop the lease is released so a
// standby takes over at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/thread_annotations.h"
#include "controller/kube/client.h"

namespace hotplug::controller::kube {

// metav1.MicroTime (a Lease's acquireTime and renewTime): RFC 3339 with microseconds, UTC.
std::string MicroTime(std::chrono::system_clock::time_point when);

class LeaderElector {
 public:
  struct Options {
    std::string ns;
    std::string name = "hotplug-operator";
    std::string identity;  // unique per process: hostname_uuid
    std::chrono::milliseconds lease_duration{15'000};
    std::chrono::milliseconds renew_deadline{10'000};
    std::chrono::milliseconds retry_period{2'000};
  };
  LeaderElector(Client& client, Options options);
  ~LeaderElector();

  // Runs the election on its own thread ("leader-election"). `on_started_leading` runs on
  // that thread once the lease is ours; `on_stopped_leading` once we lost it (not on Stop).
  void Start(std::function<void()> on_started_leading, std::function<void()> on_stopped_leading);
  // Stops trying; releases the lease when held. Idempotent.
  void Stop();
  bool IsLeader() const { return leading_.load(); }

  // "hostname_<random hex>".
  static std::string DefaultIdentity();

 private:
  void Run();
  // One GET + create/update; true when we hold the lease afterwards.
  bool TryAcquireOrRenew();
  bool CreateLease(const std::string& now);  // there is none yet
  void Release();
  // Waits `period` (with +20% jitter when `jitter`); false when stopping.
  bool Wait(std::chrono::milliseconds period, bool jitter);

  Client& client_;
  const Options options_;
  std::function<void()> on_started_;
  std::function<void()> on_stopped_;
  std::thread thread_;
  std::atomic<bool> leading_{false};

  Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;

  // Only the election thread touches these.
  std::string observed_record_;  // holder|renewTime|transitions as last seen
  std::chrono::steady_clock::time_point observed_at_{};
};

}  // namespace hotplug::controller::kube

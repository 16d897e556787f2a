// The controller's work queue: client-go's util/workqueue guarantees in C++. Keys are
// deduplicated while they wait, a key is never handed to two workers at once, failures come
// back with per-key exponential backoff bounded by an overall token bucket, and keys can be
// scheduled for later (requeue-after). Time comes from an injected clock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/thread_annotations.h"
#include "reconciler/clock.h"

namespace hotplug::controller {

// What the queue reports as it works; the metrics engineer plugs Prometheus in here
// (client-go's workqueue metrics: depth, adds, latency, work duration, retries). Every
// method has a no-op default. Called with the queue's lock NOT held, from any thread.
class WorkQueueMetrics {
 public:
  virtual ~WorkQueueMetrics() = default;
  virtual void Added() {}
  virtual void Depth(size_t depth) { (void)depth; }
  // Time a key waited in the queue before a worker took it.
  virtual void QueueLatency(double seconds) { (void)seconds; }
  // Time between Get and Done.
  virtual void WorkDuration(double seconds) { (void)seconds; }
  virtual void Retried() {}
};

// Per-key exponential backoff (base * 2^failures, capped) combined with a token bucket
// that bounds the overall retry rate; the larger of the two delays wins (client-go's
// DefaultControllerRateLimiter). Thread-safe.
class RateLimiter {
 public:
  struct Options {
    std::chrono::nanoseconds base_delay = std::chrono::milliseconds(5);
    std::chrono::nanoseconds max_delay = std::chrono::seconds(1000);
    double bucket_qps = 10.0;
    int bucket_burst = 100;
  };
  RateLimiter(const reconciler::Clock& clock, Options options);

  // How long `key` should wait before its next try; counts one more failure for it.
  std::chrono::nanoseconds When(const std::string& key);
  // Clears the failure count of `key` (it succeeded or was deleted).
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key) const;

 private:
  const reconciler::Clock& clock_;
  const Options options_;
  mutable Mutex mu_;
  std::unordered_map<std::string, int> failures_ GUARDED_BY(mu_);
  double tokens_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_refill_ GUARDED_BY(mu_);
  // Wall time (on clock_) from which the next reservation is granted when the bucket is dry.
  std::chrono::steady_clock::time_point next_free_ GUARDED_BY(mu_);
};

class WorkQueue {
 public:
  struct Options {
    RateLimiter::Options rate_limiter;
    WorkQueueMetrics* metrics = nullptr;  // not owned; nullptr = no metrics
  };
  explicit WorkQueue(const reconciler::Clock& clock) : WorkQueue(clock, Options{}) {}
  WorkQueue(const reconciler::Clock& clock, Options options);
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `key` unless it is already waiting. A key being processed is marked dirty and
  // queued again when its worker calls Done. Ignored after ShutDown.
  void Add(const std::string& key);
  // Adds `key` once `delay` has passed on the clock (earliest schedule wins). delay <= 0
  // adds at once.
  void AddAfter(const std::string& key, std::chrono::nanoseconds delay);
  // Adds `key` after the rate limiter's delay for it (a failure: backoff grows).
  void AddRateLimited(const std::string& key);
  // The key succeeded: its backoff starts again from the base delay.
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key) const;

  // Blocks until a key is ready and hands it to the caller, who owns it until Done.
  // Returns nullopt once the queue is shut down and empty.
  std::optional<std::string> Get();
  // The caller finished `key`; if it was added meanwhile it is queued again.
  void Done(const std::string& key);

  // Stops accepting keys; Get hands out what is already queued, then returns nullopt.
  // Keys scheduled for later are dropped.
  void ShutDown();
  // ShutDown, then waits until every key handed out is Done or `deadline` passes.
  // Returns true when drained.
  bool ShutDownWithDrain(std::chrono::steady_clock::time_point deadline);
  bool ShuttingDown() const;

  // Keys ready to be handed out (not counting processing or scheduled ones).
  size_t Len() const;
  // Keys scheduled for later.
  size_t WaitingLen() const;
  // A fake clock moved: re-check scheduled keys. A real clock needs no call.
  void ClockAdvanced();

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  void AddLocked(const std::string& key) REQUIRES(mu_);
  // Moves scheduled keys whose time has come into the queue; returns the earliest time
  // still scheduled, if any.
  std::optional<TimePoint> PromoteDueLocked() REQUIRES(mu_);

  const reconciler::Clock& clock_;
  RateLimiter rate_limiter_;
  WorkQueueMetrics no_metrics_;
  WorkQueueMetrics* metrics_;

  mutable Mutex mu_;
  std::condition_variable cond_;  // signalled on add, done, shutdown and clock change
  // Ready, in order; each also in dirty_.
  std::deque<std::string> queue_ GUARDED_BY(mu_);
  std::unordered_set<std::string> dirty_ GUARDED_BY(mu_);  // needs processing (queued or re-added)
  std::unordered_set<std::string> processing_ GUARDED_BY(mu_);           // handed out, not Done yet
  std::unordered_map<std::string, TimePoint> added_at_ GUARDED_BY(mu_);  // for QueueLatency
  std::unordered_map<std::string, TimePoint> started_at_ GUARDED_BY(mu_);  // for WorkDuration
  // Scheduled keys: time -> keys, and key -> its time (one schedule per key).
  std::multimap<TimePoint, std::string> waiting_ GUARDED_BY(mu_);
  std::unordered_map<std::string, TimePoint> waiting_at_ GUARDED_BY(mu_);
  bool shutting_down_ GUARDED_BY(mu_) = false;
};

}  // namespace hotplug::controller

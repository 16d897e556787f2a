#include "controller/workqueue.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace hotplug::controller {

using std::chrono::duration;
using std::chrono::duration_cast;
using std::chrono::nanoseconds;

namespace {
double Seconds(std::chrono::steady_clock::duration d) { return duration<double>(d).count(); }
}  // namespace

// ---------------------------------------------------------------------------------------
// RateLimiter

RateLimiter::RateLimiter(const reconciler::Clock& clock, Options options)
    : clock_(clock),
      options_(options),
      tokens_(static_cast<double>(options.bucket_burst)),
      last_refill_(clock.Monotonic()) {}

std::chrono::nanoseconds RateLimiter::When(const std::string& key) {
  MutexLock lock(mu_);
  // Per-key exponential backoff.
  int failures = failures_[key]++;
  double backoff_ns = static_cast<double>(options_.base_delay.count()) *
                      std::pow(2.0, static_cast<double>(std::min(failures, 62)));
  double max_ns = static_cast<double>(options_.max_delay.count());
  nanoseconds backoff(static_cast<int64_t>(std::min(backoff_ns, max_ns)));

  // Overall token bucket: a reservation that may put the bucket in debt; the debt is the
  // delay (golang.org/x/time/rate's Reserve().Delay()).
  nanoseconds bucket_delay{0};
  if (options_.bucket_qps > 0) {
    auto now = clock_.Monotonic();
    double elapsed = Seconds(now - last_refill_);
    if (elapsed > 0) {
      tokens_ = std::min(static_cast<double>(options_.bucket_burst),
                         tokens_ + elapsed * options_.bucket_qps);
      last_refill_ = now;
    }
    tokens_ -= 1.0;
    if (tokens_ < 0) {
      bucket_delay = nanoseconds(static_cast<int64_t>(-tokens_ / options_.bucket_qps * 1e9));
    }
  }
  return std::max(backoff, bucket_delay);
}

void RateLimiter::Forget(const std::string& key) {
  MutexLock lock(mu_);
  failures_.erase(key);
}

int RateLimiter::NumRequeues(const std::string& key) const {
  MutexLock lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

// ---------------------------------------------------------------------------------------
// WorkQueue

WorkQueue::WorkQueue(const reconciler::Clock& clock, Options options)
    : clock_(clock),
      rate_limiter_(clock, options.rate_limiter),
      metrics_(options.metrics ? options.metrics : &no_metrics_) {}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_) return;
  if (dirty_.count(key)) return;  // already waiting to be processed
  dirty_.insert(key);
  if (processing_.count(key)) return;  // Done() will queue it again
  queue_.push_back(key);
  added_at_.emplace(key, clock_.Monotonic());
  // The depth gauge is set under the lock: set after it, a thread holding an older depth
  // could overwrite a newer one and leave the gauge wrong once the queue goes quiet.
  metrics_->Added();
  metrics_->Depth(queue_.size());
  cond_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  MutexLock lock(mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, std::chrono::nanoseconds delay) {
  MutexLock lock(mu_);
  if (shutting_down_) return;
  if (delay <= nanoseconds::zero()) {
    AddLocked(key);
    return;
  }
  TimePoint ready_at = clock_.Monotonic() + duration_cast<std::chrono::steady_clock::duration>(delay);
  auto existing = waiting_at_.find(key);
  if (existing != waiting_at_.end()) {
    if (existing->second <= ready_at) return;  // an earlier schedule already exists
    auto range = waiting_.equal_range(existing->second);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == key) {
        waiting_.erase(it);
        break;
      }
    }
  }
  waiting_.emplace(ready_at, key);
  waiting_at_[key] = ready_at;
  lock.Unlock();
  // A waiting Get may need to wake earlier than it planned.
  cond_.notify_all();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  nanoseconds delay = rate_limiter_.When(key);
  metrics_->Retried();
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) { rate_limiter_.Forget(key); }

int WorkQueue::NumRequeues(const std::string& key) const {
  return rate_limiter_.NumRequeues(key);
}

std::optional<WorkQueue::TimePoint> WorkQueue::PromoteDueLocked() {
  auto now = clock_.Monotonic();
  std::vector<std::string> due;
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    due.push_back(std::move(waiting_.begin()->second));
    waiting_.erase(waiting_.begin());
  }
  for (const auto& key : due) {
    waiting_at_.erase(key);
    AddLocked(key);
  }
  if (waiting_.empty()) return std::nullopt;
  return waiting_.begin()->first;
}

std::optional<std::string> WorkQueue::Get() {
  MutexLock lock(mu_);
  while (true) {
    std::optional<TimePoint> next = PromoteDueLocked();
    if (!queue_.empty()) break;
    if (shutting_down_) return std::nullopt;
    if (!next) {
      lock.Wait(cond_);
      continue;
    }
    // Sleep until the earliest scheduled key is due. With a fake clock this real-time
    // wait is only an upper bound: ClockAdvanced() wakes us.
    auto remaining = *next - clock_.Monotonic();
    auto cap = std::chrono::seconds(1);
    lock.WaitFor(cond_, std::min<std::chrono::steady_clock::duration>(
                            std::max<std::chrono::steady_clock::duration>(remaining, {}), cap));
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  auto now = clock_.Monotonic();
  double waited = 0;
  if (auto it = added_at_.find(key); it != added_at_.end()) {
    waited = Seconds(now - it->second);
    added_at_.erase(it);
  }
  started_at_[key] = now;
  metrics_->Depth(queue_.size());
  lock.Unlock();
  metrics_->QueueLatency(waited);
  return key;
}

void WorkQueue::Done(const std::string& key) {
  MutexLock lock(mu_);
  double worked = 0;
  if (auto it = started_at_.find(key); it != started_at_.end()) {
    worked = Seconds(clock_.Monotonic() - it->second);
    started_at_.erase(it);
  }
  processing_.erase(key);
  if (dirty_.count(key)) {
    queue_.push_back(key);
    added_at_.emplace(key, clock_.Monotonic());
    metrics_->Depth(queue_.size());
  }
  lock.Unlock();
  metrics_->WorkDuration(worked);
  // Wake everyone: a Get may be waiting for this key, a drain for an empty processing set.
  cond_.notify_all();
}

void WorkQueue::ShutDown() {
  {
    MutexLock lock(mu_);
    shutting_down_ = true;
    waiting_.clear();
    waiting_at_.clear();
  }
  cond_.notify_all();
}

bool WorkQueue::ShutDownWithDrain(std::chrono::steady_clock::time_point deadline) {
  ShutDown();
  MutexLock lock(mu_);
  // The deadline is in real time: draining waits for real workers, not for a fake clock.
  return lock.WaitUntil(cond_, deadline,
                        [&]() REQUIRES(mu_) { return processing_.empty() && queue_.empty(); });
}

bool WorkQueue::ShuttingDown() const {
  MutexLock lock(mu_);
  return shutting_down_;
}

size_t WorkQueue::Len() const {
  MutexLock lock(mu_);
  return queue_.size();
}

size_t WorkQueue::WaitingLen() const {
  MutexLock lock(mu_);
  return waiting_.size();
}

void WorkQueue::ClockAdvanced() {
  { MutexLock lock(mu_); }
  cond_.notify_all();
}

}  // namespace hotplug::controller

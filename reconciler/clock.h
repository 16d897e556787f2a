// Time, injected (client-go's clock.Clock): conditions' transition times and latency
// measurements read it, so tests are fast and deterministic.
#pragma once

#include <chrono>
#include <mutex>

#include "common/thread_annotations.h"

namespace hotplug::reconciler {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall time, for timestamps a person reads (lastTransitionTime, failure time).
  virtual std::chrono::system_clock::time_point Now() const = 0;
  // Monotonic time, for durations (latency histograms).
  virtual std::chrono::steady_clock::time_point Monotonic() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point Monotonic() const override {
    return std::chrono::steady_clock::now();
  }
};

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    MutexLock lock(mu_);
    return wall_;
  }
  std::chrono::steady_clock::time_point Monotonic() const override {
    MutexLock lock(mu_);
    return mono_;
  }
  void Advance(std::chrono::nanoseconds by) {
    MutexLock lock(mu_);
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(by);
    mono_ += by;
  }

 private:
  mutable Mutex mu_;
  std::chrono::system_clock::time_point wall_ GUARDED_BY(mu_){std::chrono::seconds(1'800'000'000)};
  std::chrono::steady_clock::time_point mono_ GUARDED_BY(mu_){};
};

// RFC 3339 in UTC with second precision, as metav1.Time serialises.
std::string FormatRfc3339(std::chrono::system_clock::time_point time);

}  // namespace hotplug::reconciler

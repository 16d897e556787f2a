// Clang's thread-safety analysis (-Wthread-safety), as macros that are empty elsewhere, and a
// mutex the analysis understands (libstdc++'s std::mutex carries no annotations).
//
//   Mutex mu_;
//   int count_ GUARDED_BY(mu_) = 0;
//   void BumpLocked() REQUIRES(mu_);
//   void Bump() EXCLUDES(mu_) { MutexLock lock(mu_); BumpLocked(); }
//
// A condition variable waits through the lock, with a predicate that says it needs the mutex
// (the analysis checks a lambda's body as a function of its own):
//   lock.Wait(cv_, [&]() REQUIRES(mu_) { return stopping_; });
//
// The check: `cmake -DHOTPLUG_THREAD_SAFETY=ON` with clang (scripts/thread_safety, run by
// scripts/test) compiles the production libraries with -Wthread-safety -Werror.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#if defined(__clang__)
#define HOTPLUG_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define HOTPLUG_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) HOTPLUG_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY HOTPLUG_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) HOTPLUG_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) HOTPLUG_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) HOTPLUG_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) HOTPLUG_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) HOTPLUG_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) HOTPLUG_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) HOTPLUG_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define RETURN_CAPABILITY(x) HOTPLUG_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS HOTPLUG_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace hotplug {

// std::mutex, as a capability.
class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex for its scope (std::unique_lock underneath, so condition variables work).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Lets go for a while and takes the mutex again.
  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }

  // std::condition_variable's waits: the mutex is let go while waiting and held again on
  // return; with a predicate, they return its last value.
  void Wait(std::condition_variable& cv) { cv.wait(lock_); }
  template <class Predicate>
  void Wait(std::condition_variable& cv, Predicate ready) {
    cv.wait(lock_, std::move(ready));
  }
  template <class Clock, class Duration>
  std::cv_status WaitUntil(std::condition_variable& cv,
                           const std::chrono::time_point<Clock, Duration>& deadline) {
    return cv.wait_until(lock_, deadline);
  }
  template <class Clock, class Duration, class Predicate>
  bool WaitUntil(std::condition_variable& cv,
                 const std::chrono::time_point<Clock, Duration>& deadline, Predicate ready) {
    return cv.wait_until(lock_, deadline, std::move(ready));
  }
  template <class Rep, class Period>
  std::cv_status WaitFor(std::condition_variable& cv,
                         const std::chrono::duration<Rep, Period>& timeout) {
    return cv.wait_for(lock_, timeout);
  }
  template <class Rep, class Period, class Predicate>
  bool WaitFor(std::condition_variable& cv, const std::chrono::duration<Rep, Period>& timeout,
               Predicate ready) {
    return cv.wait_for(lock_, timeout, std::move(ready));
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace hotplug

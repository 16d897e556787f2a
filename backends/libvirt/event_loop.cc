#include "backends/libvirt/event_loop.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "backends/libvirt/errors.h"
#include "common/thread_annotations.h"

namespace hotplug::backends::libvirt {
namespace {

Mutex acquire_mutex;
std::weak_ptr<EventLoop> current_loop GUARDED_BY(acquire_mutex);  // the running loop, if held
// Held by the thread running the loop: a loop started while the previous one is still
// stopping waits here, so two threads never run libvirt's loop at once.
Mutex run_mutex;

// A zero-delay timer wakes the loop out of poll() so it notices the stop request; it removes
// itself on its first run.
void WakeOnce(int timer, void* /*opaque*/) { virEventRemoveTimeout(timer); }

}  // namespace

std::shared_ptr<EventLoop> EventLoop::Acquire() {
  static std::once_flag registered;
  std::call_once(registered, [] {
    InstallQuietErrorHandler();
    if (virEventRegisterDefaultImpl() != 0) {
      // Nothing works without it and nothing in the environment can cause it: die.
      std::fprintf(stderr, "fatal: virEventRegisterDefaultImpl failed\n");
      std::abort();
    }
  });
  MutexLock lock(acquire_mutex);
  std::shared_ptr<EventLoop> loop = current_loop.lock();
  if (!loop) {
    loop.reset(new EventLoop());
    current_loop = loop;
  }
  return loop;
}

EventLoop::EventLoop() : thread_([this] { Run(); }) {}

EventLoop::~EventLoop() {
  stop_requested_.store(true);
  if (virEventAddTimeout(0, WakeOnce, nullptr, nullptr) < 0) {
    std::fprintf(stderr, "fatal: could not wake the libvirt event loop to stop it\n");
    std::abort();
  }
  thread_.join();
}

void EventLoop::Run() {
  pthread_setname_np(pthread_self(), "libvirt-events");
  MutexLock running(run_mutex);
  while (!stop_requested_.load()) {
    if (virEventRunDefaultImpl() < 0) {
      virResetLastError();  // a failed poll iteration is retried; the loop must not die
    }
  }
}

}  // namespace hotplug::backends::libvirt

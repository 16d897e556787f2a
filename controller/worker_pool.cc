#include "controller/worker_pool.h"

#include <pthread.h>

#include <utility>

namespace hotplug::controller {

WorkerPool::~WorkerPool() {
  Close();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

bool WorkerPool::Start(int count, const std::string& name, const std::function<void(int)>& body) {
  MutexLock lock(mu_);
  if (started_ || closed_) return false;
  started_ = true;
  for (int i = 0; i < count; ++i) {
    running_++;
    std::string thread_name = (name + "-" + std::to_string(i)).substr(0, 15);
    threads_.emplace_back([this, body, i, thread_name] {
      pthread_setname_np(pthread_self(), thread_name.c_str());
      body(i);
      Finished();
    });
  }
  return true;
}

bool WorkerPool::Close() {
  MutexLock lock(mu_);
  return !std::exchange(closed_, true);
}

void WorkerPool::Finished() {
  {
    MutexLock lock(mu_);
    running_--;
  }
  finished_cv_.notify_all();
}

bool WorkerPool::Wait(std::chrono::steady_clock::time_point deadline) {
  {
    MutexLock lock(mu_);
    closed_ = true;
    if (!lock.WaitUntil(finished_cv_, deadline, [&] { return running_.load() == 0; })) {
      return false;
    }
  }
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  return true;
}

}  // namespace hotplug::controller

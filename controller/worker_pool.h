// The worker threads of a work loop (controller.cc's reconcile workers, the central node
// assigner's label writers): started once, each running its body until the body returns
// (when its work queue is shut down), and waited for with a deadline at shutdown.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/thread_annotations.h"

namespace hotplug::controller {

class WorkerPool {
 public:
  WorkerPool() = default;
  // Joins every thread: a body still running at a Wait's deadline is waited for here (a
  // process that cannot wait exits before its destructors run).
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Starts `count` threads, named "<name>-N" (at most 15 characters), running body(N).
  // False, and nothing started, when the pool was started before or is closed.
  bool Start(int count, const std::string& name, const std::function<void(int)>& body);
  // No Start after this; what runs goes on. True the first time only (so that one caller
  // does the shutdown that follows).
  bool Close();
  // Waits until every body returned, at most until `deadline`; true when they all did (the
  // threads are then joined).
  bool Wait(std::chrono::steady_clock::time_point deadline);
  int running() const { return running_.load(); }

 private:
  void Finished();

  std::vector<std::thread> threads_;  // written by Start only, before any Wait can read it
  std::atomic<int> running_{0};
  Mutex mu_;
  std::condition_variable finished_cv_;
  bool started_ GUARDED_BY(mu_) = false;
  bool closed_ GUARDED_BY(mu_) = false;
};

}  // namespace hotplug::controller

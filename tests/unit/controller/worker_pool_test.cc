// The worker pool of controller.cc and the node assigner: one start, every body run with its
// own index and thread name, no start after close, and a bounded wait at shutdown that tells
// a busy worker from a finished one. Waits are deadlines, never sleeps used as sync.
#include "controller/worker_pool.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace hotplug::controller {
namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 5s;  // generous bound for things that must happen

std::string ThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

TEST(WorkerPoolTest, RunsEachBodyOnceWithItsIndexAndName) {
  std::mutex mu;
  std::set<int> indexes;
  std::set<std::string> names;
  WorkerPool pool;
  ASSERT_TRUE(pool.Start(3, "worker", [&](int index) {
    std::lock_guard<std::mutex> lock(mu);
    indexes.insert(index);
    names.insert(ThreadName());
  }));
  ASSERT_TRUE(pool.Wait(std::chrono::steady_clock::now() + kDeadline));
  EXPECT_EQ(indexes, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(names, (std::set<std::string>{"worker-0", "worker-1", "worker-2"}));
  EXPECT_EQ(pool.running(), 0);
}

TEST(WorkerPoolTest, ALongNameIsCutToWhatTheKernelKeeps) {
  std::promise<std::string> name;
  WorkerPool pool;
  ASSERT_TRUE(pool.Start(1, "a-very-long-pool-name", [&](int) { name.set_value(ThreadName()); }));
  auto seen = name.get_future();
  ASSERT_EQ(seen.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(seen.get(), "a-very-long-poo");
}

TEST(WorkerPoolTest, StartsOnceAndNeverAfterClose) {
  std::atomic<int> runs{0};
  WorkerPool pool;
  ASSERT_TRUE(pool.Start(2, "w", [&](int) { runs++; }));
  EXPECT_FALSE(pool.Start(2, "w", [&](int) { runs++; }));
  ASSERT_TRUE(pool.Wait(std::chrono::steady_clock::now() + kDeadline));
  EXPECT_EQ(runs.load(), 2);

  WorkerPool closed;
  EXPECT_TRUE(closed.Close());
  EXPECT_FALSE(closed.Close()) << "only the first Close may do the shutdown";
  EXPECT_FALSE(closed.Start(2, "w", [&](int) { runs++; }));
  EXPECT_TRUE(closed.Wait(std::chrono::steady_clock::now()));
  EXPECT_EQ(runs.load(), 2);
}

TEST(WorkerPoolTest, WaitGivesUpAtTheDeadlineWhileABodyRunsThenSeesItFinish) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  WorkerPool pool;
  ASSERT_TRUE(pool.Start(2, "w", [released](int index) {
    if (index == 1) released.wait();
  }));
  EXPECT_FALSE(pool.Wait(std::chrono::steady_clock::now() + 50ms));
  EXPECT_EQ(pool.running(), 1);
  release.set_value();
  EXPECT_TRUE(pool.Wait(std::chrono::steady_clock::now() + kDeadline));
  EXPECT_EQ(pool.running(), 0);
}

TEST(WorkerPoolTest, TheDestructorWaitsForABusyBody) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> finished{false};
  std::future<void> destroyed;
  {
    auto pool = std::make_unique<WorkerPool>();
    ASSERT_TRUE(pool->Start(1, "w", [&, released](int) {
      released.wait();
      finished = true;
    }));
    EXPECT_FALSE(pool->Wait(std::chrono::steady_clock::now() + 10ms));
    destroyed = std::async(std::launch::async, [p = std::move(pool)]() mutable { p.reset(); });
  }
  EXPECT_EQ(destroyed.wait_for(50ms), std::future_status::timeout);
  release.set_value();
  ASSERT_EQ(destroyed.wait_for(kDeadline), std::future_status::ready);
  EXPECT_TRUE(finished.load());
}

}  // namespace
}  // namespace hotplug::controller

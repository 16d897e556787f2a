// The work queue's guarantees, each as a test: dedup, one worker per key, backoff,
// token bucket, requeue-after, shutdown with drain. Waits are deadlines on futures and
// condition variables, never sleeps used as synchronisation.
#include "controller/workqueue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace hotplug::controller {
namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 5s;  // generous bound for things that must happen

// Get on another thread, so a test can tell "blocked" from "returned".
std::future<std::optional<std::string>> AsyncGet(WorkQueue& queue) {
  return std::async(std::launch::async, [&queue] { return queue.Get(); });
}

TEST(WorkQueueTest, AddingAQueuedKeyAgainKeepsOneCopy) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  queue.Add("ns/a");
  queue.Add("ns/b");
  queue.Add("ns/a");
  EXPECT_EQ(queue.Len(), 2u);
  EXPECT_EQ(queue.Get(), "ns/a");
  EXPECT_EQ(queue.Get(), "ns/b");
  EXPECT_EQ(queue.Len(), 0u);
}

TEST(WorkQueueTest, KeyAddedWhileProcessingIsHeldUntilDoneThenQueuedOnce) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Add("ns/a");
  queue.Add("ns/a");
  // Not handed to a second worker while the first still holds it.
  EXPECT_EQ(queue.Len(), 0u);
  auto second = AsyncGet(queue);
  EXPECT_EQ(second.wait_for(50ms), std::future_status::timeout);
  queue.Done("ns/a");
  ASSERT_EQ(second.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(second.get(), "ns/a");
  queue.Done("ns/a");
  EXPECT_EQ(queue.Len(), 0u);
}

TEST(WorkQueueTest, NoKeyIsEverProcessedByTwoWorkersAtOnce) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  constexpr int kKeys = 5;
  constexpr int kWorkers = 8;
  constexpr int kAddsPerProducer = 2000;
  std::atomic<int> in_flight[kKeys] = {};
  std::atomic<bool> overlap{false};
  std::atomic<int> processed{0};

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto key = queue.Get()) {
        int index = (*key)[0] - 'a';
        if (in_flight[index].fetch_add(1) != 0) overlap = true;
        std::this_thread::yield();  // widen the window a second worker would need
        in_flight[index].fetch_sub(1);
        processed++;
        queue.Done(*key);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kAddsPerProducer; ++i) {
        queue.Add(std::string(1, static_cast<char>('a' + (i + p) % kKeys)));
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(queue.ShutDownWithDrain(std::chrono::steady_clock::now() + kDeadline));
  for (auto& t : workers) t.join();
  EXPECT_FALSE(overlap.load());
  // Dedup collapsed many adds; every key was processed at least once.
  EXPECT_GE(processed.load(), kKeys);
  EXPECT_LT(processed.load(), 3 * kAddsPerProducer);
}

TEST(RateLimiterTest, BackoffDoublesFromFiveMillisecondsAndCapsAtThousandSeconds) {
  reconciler::FakeClock clock;
  RateLimiter limiter(clock, {.base_delay = 5ms, .max_delay = 1000s, .bucket_qps = 0, .bucket_burst = 0});  // bucket off: backoff alone
  EXPECT_EQ(limiter.When("k"), 5ms);
  EXPECT_EQ(limiter.When("k"), 10ms);
  EXPECT_EQ(limiter.When("k"), 20ms);
  EXPECT_EQ(limiter.When("k"), 40ms);
  EXPECT_EQ(limiter.NumRequeues("k"), 4);
  for (int i = 0; i < 40; ++i) limiter.When("k");
  EXPECT_EQ(limiter.When("k"), 1000s);
  // Other keys have their own count.
  EXPECT_EQ(limiter.When("other"), 5ms);
}

TEST(RateLimiterTest, ForgetStartsBackoffAgain) {
  reconciler::FakeClock clock;
  RateLimiter limiter(clock, {.base_delay = 5ms, .max_delay = 1000s, .bucket_qps = 0, .bucket_burst = 0});
  limiter.When("k");
  limiter.When("k");
  limiter.Forget("k");
  EXPECT_EQ(limiter.NumRequeues("k"), 0);
  EXPECT_EQ(limiter.When("k"), 5ms);
}

TEST(RateLimiterTest, TokenBucketBoundsOverallRetriesAfterBurst) {
  reconciler::FakeClock clock;
  RateLimiter limiter(clock, {});  // 10 qps, burst 100
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(limiter.When("key-" + std::to_string(i)), 5ms) << i;
  }
  // The bucket is dry: each next retry waits 100 ms more, whatever its own backoff.
  EXPECT_EQ(limiter.When("fresh-1"), 100ms);
  EXPECT_EQ(limiter.When("fresh-2"), 200ms);
  // Time refills it.
  clock.Advance(10s);
  EXPECT_EQ(limiter.When("fresh-3"), 5ms);
}

TEST(WorkQueueTest, AddRateLimitedWaitsForTheBackoffOnTheClock) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.AddRateLimited("ns/a");  // 5 ms
  EXPECT_EQ(queue.Len(), 0u);
  EXPECT_EQ(queue.WaitingLen(), 1u);
  auto got = AsyncGet(queue);
  EXPECT_EQ(got.wait_for(50ms), std::future_status::timeout);
  clock.Advance(5ms);
  queue.ClockAdvanced();
  ASSERT_EQ(got.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(got.get(), "ns/a");
  queue.Done("ns/a");
  EXPECT_EQ(queue.NumRequeues("ns/a"), 1);
  queue.Forget("ns/a");
  EXPECT_EQ(queue.NumRequeues("ns/a"), 0);
}

TEST(WorkQueueTest, AddAfterHoldsTheKeyUntilItsTimeAndEarliestScheduleWins) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.AddAfter("ns/a", 10s);
  queue.AddAfter("ns/a", 3s);   // earlier: replaces
  queue.AddAfter("ns/a", 20s);  // later: ignored
  EXPECT_EQ(queue.WaitingLen(), 1u);
  auto got = AsyncGet(queue);
  clock.Advance(2s);
  queue.ClockAdvanced();
  EXPECT_EQ(got.wait_for(50ms), std::future_status::timeout);
  clock.Advance(1s);
  queue.ClockAdvanced();
  ASSERT_EQ(got.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(got.get(), "ns/a");
  EXPECT_EQ(queue.WaitingLen(), 0u);
}

TEST(WorkQueueTest, AddAfterWithRealClockFiresOnItsOwn) {
  reconciler::SystemClock clock;
  WorkQueue queue(clock);
  auto start = std::chrono::steady_clock::now();
  queue.AddAfter("ns/a", 30ms);
  auto got = AsyncGet(queue);
  ASSERT_EQ(got.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(got.get(), "ns/a");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST(WorkQueueTest, ScheduledKeyAlreadyQueuedIsNotDuplicated) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  queue.AddAfter("ns/a", 1s);
  clock.Advance(1s);
  queue.ClockAdvanced();
  EXPECT_EQ(queue.Get(), "ns/a");
  EXPECT_EQ(queue.Len(), 0u);
}

TEST(WorkQueueTest, ShutDownHandsOutWhatIsQueuedThenEnds) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  queue.Add("ns/b");
  queue.AddAfter("ns/c", 1s);
  queue.ShutDown();
  queue.Add("ns/d");  // ignored
  EXPECT_TRUE(queue.ShuttingDown());
  EXPECT_EQ(queue.Get(), "ns/a");
  EXPECT_EQ(queue.Get(), "ns/b");
  EXPECT_EQ(queue.Get(), std::nullopt);  // scheduled ns/c was dropped, ns/d never added
}

TEST(WorkQueueTest, ShutDownWakesABlockedGet) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  auto got = AsyncGet(queue);
  EXPECT_EQ(got.wait_for(20ms), std::future_status::timeout);
  queue.ShutDown();
  ASSERT_EQ(got.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(got.get(), std::nullopt);
}

TEST(WorkQueueTest, ShutDownWithDrainWaitsForTheKeyInFlight) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  auto drained = std::async(std::launch::async, [&] {
    return queue.ShutDownWithDrain(std::chrono::steady_clock::now() + kDeadline);
  });
  EXPECT_EQ(drained.wait_for(50ms), std::future_status::timeout);
  queue.Done("ns/a");
  ASSERT_EQ(drained.wait_for(kDeadline), std::future_status::ready);
  EXPECT_TRUE(drained.get());
}

TEST(WorkQueueTest, ShutDownWithDrainGivesUpAtTheDeadline) {
  reconciler::FakeClock clock;
  WorkQueue queue(clock);
  queue.Add("ns/a");
  ASSERT_EQ(queue.Get(), "ns/a");
  EXPECT_FALSE(queue.ShutDownWithDrain(std::chrono::steady_clock::now() + 20ms));
  queue.Done("ns/a");
}

class CountingMetrics : public WorkQueueMetrics {
 public:
  void Added() override { adds++; }
  void Retried() override { retries++; }
  void QueueLatency(double seconds) override { last_latency = seconds; }
  std::atomic<int> adds{0}, retries{0};
  std::atomic<double> last_latency{-1};
};

TEST(WorkQueueTest, ReportsAddsRetriesAndLatencyToMetrics) {
  reconciler::FakeClock clock;
  CountingMetrics metrics;
  WorkQueue queue(clock, {.rate_limiter = {}, .metrics = &metrics});
  queue.Add("ns/a");
  clock.Advance(2s);
  ASSERT_EQ(queue.Get(), "ns/a");
  queue.Done("ns/a");
  queue.AddRateLimited("ns/a");
  EXPECT_EQ(metrics.adds.load(), 1);
  EXPECT_EQ(metrics.retries.load(), 1);
  EXPECT_DOUBLE_EQ(metrics.last_latency.load(), 2.0);
}

// Holds the first Depth(1) report until a Depth(0) arrives (or 300 ms pass), to make the
// race between an Add and a Get happen on purpose.
class RacingDepthMetrics : public WorkQueueMetrics {
 public:
  void Depth(size_t depth) override {
    std::unique_lock lock(mu_);
    if (depth == 1 && !held_) {
      held_ = true;
      cv_.notify_all();
      cv_.wait_for(lock, 300ms, [&] { return zero_seen_; });
    }
    if (depth == 0) {
      zero_seen_ = true;
      cv_.notify_all();
    }
    last_ = depth;
  }
  bool WaitUntilHeld() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return held_; });
  }
  size_t last() {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false, zero_seen_ = false;
  size_t last_ = 99;
};

TEST(WorkQueueTest, DepthGaugeEndsAtTheTrueDepthWhenAnAddAndAGetRace) {
  // An Add reports depth 1 and, before that report lands, a Get takes the key and reports
  // 0. The gauge must end at 0: a stale 1 written last would stay on /metrics for good once
  // the queue is quiet (scripts/bench's restart run waited forever on workqueue_depth 361).
  reconciler::FakeClock clock;
  RacingDepthMetrics metrics;
  WorkQueue queue(clock, {.rate_limiter = {}, .metrics = &metrics});
  std::thread adder([&] { queue.Add("ns/a"); });
  ASSERT_TRUE(metrics.WaitUntilHeld());
  EXPECT_EQ(queue.Get(), "ns/a");
  adder.join();
  queue.Done("ns/a");
  EXPECT_EQ(queue.Len(), 0u);
  EXPECT_EQ(metrics.last(), 0u);
}

}  // namespace
}  // namespace hotplug::controller

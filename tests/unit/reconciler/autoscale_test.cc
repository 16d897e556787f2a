// The autoscale decision (reconciler/autoscale.h): the HPA rule, its tolerance, the windows,
// the step and the bounds, each as its own rule.
#include "reconciler/autoscale.h"

#include <gtest/gtest.h>

namespace hotplug::reconciler {
namespace {

using std::chrono::seconds;

crd::CpuAutoscale Cpu(int64_t min, int64_t max, int64_t target) {
  crd::CpuAutoscale a;
  a.min_vcpus = min;
  a.max_vcpus = max;
  a.target_utilization = target;
  a.scale_up = {seconds(0), 4};
  a.scale_down = {seconds(0), 4};
  return a;
}

TEST(AutoscaleTest, HpaRuleIsCeilOfCurrentTimesUtilisationOverTarget) {
  // 2 vCPUs at 90 %, target 60 %: ceil(2 * 0.9 / 0.6) = 3.
  EXPECT_EQ(HpaRecommendation(2, 1.8, 0.6), 3);
  // 4 vCPUs at 10 %: ceil(4 * 0.1 / 0.6) = 1.
  EXPECT_EQ(HpaRecommendation(4, 0.4, 0.6), 1);
  // Exactly n times the target gives n, not n + 1 from rounding.
  EXPECT_EQ(HpaRecommendation(1, 1.2000000001, 0.6), 2);
}

TEST(AutoscaleTest, WithinTenPercentOfTheTargetNothingChanges) {
  EXPECT_EQ(HpaRecommendation(4, 4 * 0.6 * 1.09, 0.6), 4);
  EXPECT_EQ(HpaRecommendation(4, 4 * 0.6 * 0.91, 0.6), 4);
  EXPECT_EQ(HpaRecommendation(4, 4 * 0.6 * 1.12, 0.6), 5);
  EXPECT_EQ(HpaRecommendation(4, 4 * 0.6 * 0.5, 0.6), 2);
}

TEST(AutoscaleTest, DownWindowKeepsTheHighestRecommendation) {
  RecommendationHistory history;
  const MonoTime t0{};
  const auto down = seconds(300);
  EXPECT_EQ(Stabilize(history, t0, 4, 4, seconds(0), down), 4);
  // The load falls: 1 is recommended, but 4 is still in the down window.
  EXPECT_EQ(Stabilize(history, t0 + seconds(60), 1, 4, seconds(0), down), 4);
  EXPECT_EQ(Stabilize(history, t0 + seconds(299), 1, 4, seconds(0), down), 4);
  // Once the 4 has left the window the highest is 1.
  EXPECT_EQ(Stabilize(history, t0 + seconds(301), 1, 4, seconds(0), down), 1);
}

TEST(AutoscaleTest, UpWindowKeepsTheLowestRecommendation) {
  RecommendationHistory history;
  const MonoTime t0{};
  const auto up = seconds(30);
  EXPECT_EQ(Stabilize(history, t0, 1, 1, up, seconds(0)), 1);
  EXPECT_EQ(Stabilize(history, t0 + seconds(10), 4, 1, up, seconds(0)), 1);
  EXPECT_EQ(Stabilize(history, t0 + seconds(29), 4, 1, up, seconds(0)), 1);
  EXPECT_EQ(Stabilize(history, t0 + seconds(31), 4, 1, up, seconds(0)), 4);
}

TEST(AutoscaleTest, HistoryForgetsWhatNoWindowNeeds) {
  RecommendationHistory history;
  for (int i = 0; i < 1000; ++i) {
    Stabilize(history, MonoTime{} + seconds(i), i % 5, 2, seconds(10), seconds(20));
  }
  EXPECT_LE(history.size(), 22u);
}

TEST(AutoscaleTest, StepAndBoundsClampTheDecision) {
  const crd::ScalingRules up{seconds(0), 1}, down{seconds(0), 2};
  EXPECT_EQ(Bound(8, 8, 2, up, down, {1, 8, 0}).desired, 3);
  EXPECT_EQ(Bound(8, 8, 2, up, down, {1, 8, 0}).limit, Limit::kStep);
  EXPECT_EQ(Bound(1, 1, 6, up, down, {1, 8, 0}).desired, 4);
  EXPECT_EQ(Bound(3, 3, 2, up, down, {1, 2, 0}).desired, 2);
  EXPECT_EQ(Bound(3, 3, 2, up, down, {1, 2, 0}).limit, Limit::kMaximum);
  EXPECT_EQ(Bound(3, 3, 2, up, down, {1, 8, 2}).limit, Limit::kDomainMaximum);
  EXPECT_EQ(Bound(1, 1, 2, up, down, {2, 8, 0}).desired, 2);
  EXPECT_EQ(Bound(1, 1, 2, up, down, {2, 8, 0}).limit, Limit::kMinimum);
}

// Review of issue 15, item 1: with 2 threads per core every answer is whole cores, a step
// of 1 vCPU is one core, the minimum rounds up and the maximum down.
TEST(AutoscaleTest, WithThreadsPerCoreEveryAnswerIsWholeCores) {
  const crd::ScalingRules up{seconds(0), 3}, down{seconds(0), 1};
  const Bounds smt{1, 7, 0, 2};
  EXPECT_EQ(Bound(5, 5, 2, up, down, smt).desired, 4) << "the up step of 3 is one core";
  EXPECT_EQ(Bound(5, 5, 4, up, down, smt).desired, 6) << "5 is rounded up to 3 cores";
  EXPECT_EQ(Bound(9, 9, 6, up, down, smt).desired, 6) << "maxVcpus 7 is 3 whole cores";
  EXPECT_EQ(Bound(9, 9, 6, up, down, smt).limit, Limit::kMaximum);
  EXPECT_EQ(Bound(1, 1, 6, up, down, smt).desired, 4) << "the down step of 1 is one core";
  EXPECT_EQ(Bound(1, 1, 6, up, down, smt).limit, Limit::kStep);
  EXPECT_EQ(Bound(1, 1, 2, up, down, smt).desired, 2) << "minVcpus 1 is one core";
  EXPECT_EQ(Bound(3, 3, 4, up, down, smt).desired, 4) << "3 needs 2 cores";
  EXPECT_EQ(Bound(0, 0, 3, up, down, smt).desired % 2, 0) << "from an incomplete core";
  EXPECT_EQ(Bound(9, 9, 3, up, down, smt).desired % 2, 0) << "from an incomplete core";
  // The defaults: a 2-thread domain scales down one core at a time.
  RecommendationHistory history;
  crd::CpuAutoscale spec = Cpu(1, 8, 60);
  spec.scale_down = {seconds(0), crd::kDefaultCpuScaleDownStep};
  EXPECT_EQ(DecideVcpus(spec, {8, 0.0}, {8, 2}, history, MonoTime{}).desired, 6);
}

// Review of issue 15, item 2: a guest that cannot unplug is floored at what it has, even
// above the maximum, and says so.
TEST(AutoscaleTest, AGuestThatCannotUnplugIsFlooredAtItsCount) {
  RecommendationHistory history;
  crd::CpuAutoscale spec = Cpu(1, 4, 60);
  spec.scale_down.stabilization_window = seconds(0);
  const Decision idle = DecideVcpus(spec, {3, 0.0}, {0, 1, true}, history, MonoTime{});
  EXPECT_EQ(idle.desired, 3);
  EXPECT_EQ(idle.limit, Limit::kGuestCannotUnplug);
  EXPECT_EQ(DecideVcpus(spec, {6, 0.0}, {0, 1, true}, history, MonoTime{}).desired, 6);
  RecommendationHistory fresh;
  EXPECT_EQ(DecideVcpus(spec, {2, 2.0}, {0, 1, true}, fresh, MonoTime{}).desired, 4)
      << "it still grows";
}

TEST(AutoscaleTest, DecideVcpusFollowsTheLoadWithinTheBounds) {
  RecommendationHistory history;
  const crd::CpuAutoscale spec = Cpu(1, 4, 60);
  // 1 vCPU fully busy: 2; 2 fully busy: ceil(2 / 0.6) = 4; far above: capped at 4.
  EXPECT_EQ(DecideVcpus(spec, {1, 1.0}, {}, history, MonoTime{}).desired, 2);
  EXPECT_EQ(DecideVcpus(spec, {2, 2.0}, {}, history, MonoTime{} + seconds(1)).desired, 4);
  const Decision capped = DecideVcpus(spec, {4, 4.0}, {}, history, MonoTime{} + seconds(2));
  EXPECT_EQ(capped.desired, 4);
  EXPECT_EQ(capped.raw, 7);
  EXPECT_EQ(capped.limit, Limit::kMaximum);
  // Idle: the minimum.
  EXPECT_EQ(DecideVcpus(spec, {4, 0.0}, {}, history, MonoTime{} + seconds(3)).desired, 1);
}

TEST(AutoscaleTest, MemoryGrowsByWholeBlocksAndShrinksOnlyWhenAllowed) {
  constexpr uint64_t kBlock = 128ull << 20;
  crd::MemoryAutoscale spec;
  spec.min = crd::Quantity::FromInt(1LL << 30);
  spec.max = crd::Quantity::FromInt(4LL << 30);
  spec.target_available.percent = 50;
  spec.scale_up = {seconds(0), 64};
  spec.scale_down = {seconds(0), 64};
  RecommendationHistory history;
  // 1 GiB seen by the guest (and the domain), 768 MiB used: it needs 1.5 GiB for 50 % free.
  MemoryUse use{1ull << 30, 1ull << 30, 256ull << 20};
  Decision grow = DecideMemory(spec, use, kBlock, 0, history, MonoTime{});
  EXPECT_EQ(grow.desired * kBlock, 1536ull << 20);
  // 2 GiB with 100 MiB used: 50 % free wants 256 MiB (2 blocks), the minimum is 1 GiB, but
  // shrinking is not allowed: it stays.
  history.clear();
  MemoryUse idle{2ull << 30, 2ull << 30, (2ull << 30) - (100ull << 20)};
  EXPECT_EQ(DecideMemory(spec, idle, kBlock, 0, history, MonoTime{}).desired * kBlock, 2ull << 30);
  spec.allow_shrink = true;
  history.clear();
  EXPECT_EQ(DecideMemory(spec, idle, kBlock, 0, history, MonoTime{}).desired * kBlock, 1ull << 30);
}

}  // namespace
}  // namespace hotplug::reconciler

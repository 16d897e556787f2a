// spec.cpu.autoscale on a real TCG guest, one boot for the whole suite: the test tells the
// guest (through its control serial port, scripts/lib/guest.sh --control) to keep its CPUs
// busy or idle, and the reconciler, sampling libvirt's per-vCPU time, follows: Recommend only
// reports, Auto plugs up to maxVcpus and the guest onlines them, and once the load stops and
// the (shortened) down window has passed the unplug runs; under TCG it is OutOfSync as always
// and nothing is plugged again.
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "crd/elasticvm.h"
#include "reconciler/autoscaler.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"
#include "tests/e2e/e2e_test_support.h"

namespace hotplug::e2e {
namespace {

using backends::libvirt::LibvirtHypervisor;
using namespace std::chrono_literals;

constexpr auto kDownWindow = 3s;
constexpr double kDownWindowMs = 3000;

class AutoscaleE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    std::string error;
    guest_ = Guest::Boot(UniqueDomainName("autoscale"),
                         {"--max-vcpus", "4", "--vcpus", "1", "--virtio-mem-mib", "0",
                          "--control"},
                         &error);
    ASSERT_NE(guest_, nullptr) << error;
    object_.metadata.name = "autoscale";
    object_.metadata.namespace_ = "default";
    object_.metadata.uid = "autoscale-uid";
    object_.metadata.generation = 1;
    object_.spec.domain = guest_->name();
    object_.spec.persist = false;
    crd::CpuAutoscale autoscale;
    autoscale.mode = crd::AutoscaleMode::kRecommend;
    autoscale.min_vcpus = 1;
    autoscale.max_vcpus = 4;
    autoscale.target_utilization = 60;
    autoscale.scale_up = {2s, 4};
    autoscale.scale_down = {kDownWindow, 1};
    object_.spec.cpu.autoscale = autoscale;
  }
  static reconciler::Options WithAutoscaler(reconciler::Autoscaler* autoscaler) {
    reconciler::Options options;
    options.autoscaler = autoscaler;
    return options;
  }

  // The guest starts (n > 0) or stops (0) its CPU burners and says so on its console.
  void Burn(int n) {
    CommandResult sent = RunGuestScript(
        n > 0 ? std::vector<std::string>{"control", guest_->name(), "burn", std::to_string(n)}
              : std::vector<std::string>{"control", guest_->name(), "stop"});
    ASSERT_EQ(sent.exit_code, 0) << sent.output;
    const std::string want = "HOTPLUG-GUEST burn n=" + std::to_string(n);
    ASSERT_TRUE(PollUntil([&] { return CountLines(want) > burn_acks_[n]; }, 30s))
        << "the guest did not acknowledge: " << want;
    burn_acks_[n] = CountLines(want);
  }
  int CountLines(const std::string& text) const {
    std::ifstream log(guest_->serial_log());
    int count = 0;
    for (std::string line; std::getline(log, line);) count += line.find(text) == 0 ? 1 : 0;
    return count;
  }

  // Passes as the controller runs them (a pass at least every 250 ms; the autoscaler samples
  // only when its period is due) until `done` or `timeout`. Returns every step taken.
  std::vector<reconciler::StepRecord> PassUntil(const std::function<bool()>& done,
                                                std::chrono::seconds timeout) {
    std::vector<reconciler::StepRecord> steps;
    PollUntil(
        [&] {
          reconciler::Result result = reconciler_.Reconcile(object_);
          object_.status = result.status;
          for (auto& step : result.steps) {
            step_times_.push_back(std::chrono::steady_clock::now());
            steps.push_back(step);
          }
          return done();
        },
        timeout, 250ms);
    return steps;
  }
  int64_t Recommended() const {
    return object_.status.vcpus ? object_.status.vcpus->recommended.value_or(0) : 0;
  }
  std::string Condition(const char* type) const {
    const crd::Condition* c = crd::FindCondition(object_.status, type);
    return c ? c->reason + ": " + c->message : "(none)";
  }

  std::unique_ptr<Guest> guest_;
  LibvirtHypervisor backend_;
  reconciler::SystemClock clock_;
  reconciler::Autoscaler autoscaler_{reconciler::AutoscaleOptions{1s, 2s, 16}};
  reconciler::Options options_ = WithAutoscaler(&autoscaler_);
  reconciler::Reconciler reconciler_{backend_, clock_, options_};
  crd::ElasticVM object_;
  std::map<int, int> burn_acks_;
  std::vector<std::chrono::steady_clock::time_point> step_times_;
};

TEST_F(AutoscaleE2E, FollowsTheGuestsLoadWithinTheBoundsAndWindows) {
  const auto load_start = std::chrono::steady_clock::now();
  Burn(4);

  // Recommend: the number is reported, nothing is plugged.
  auto steps = PassUntil([&] { return Recommended() >= 2; }, 60s);
  EXPECT_TRUE(steps.empty()) << "Recommend took a step: " << steps.front().operation;
  ASSERT_GE(Recommended(), 2) << Condition(reconciler::condition::kAutoscaling);
  EXPECT_EQ(object_.status.vcpus->current, 1);
  EXPECT_GE(object_.status.vcpus->utilization.value_or(0), 66);
  EXPECT_NE(Condition(reconciler::condition::kAutoscaling).find("Recommending: recommends"),
            std::string::npos)
      << Condition(reconciler::condition::kAutoscaling);
  Measure("autoscale.recommend_after_load_start", MillisecondsSince(load_start), "ms");

  // Auto: plugged up to maxVcpus, and the guest brings them online.
  object_.spec.cpu.autoscale->mode = crd::AutoscaleMode::kAuto;
  object_.metadata.generation = 2;
  const auto auto_start = std::chrono::steady_clock::now();
  steps = PassUntil([&] { return object_.status.vcpus->current == 4; }, 120s);
  ASSERT_EQ(object_.status.vcpus->current, 4) << Condition(reconciler::condition::kAutoscaling);
  for (const auto& step : steps) {
    EXPECT_EQ(step.operation, "plug");
    EXPECT_TRUE(step.result.ok()) << step.result.ToString();
  }
  ASSERT_FALSE(step_times_.empty());
  Measure("autoscale.auto_first_plug",
          std::chrono::duration<double, std::milli>(step_times_[0] - auto_start).count(), "ms");
  EXPECT_TRUE(guest_->WaitForReport([](const GuestReport& r) { return r.online_cpus == 4; }, 60s))
      << "the guest did not bring 4 CPUs online";
  Measure("autoscale.auto_to_four_online", MillisecondsSince(auto_start), "ms");

  // The load stops: nothing happens inside the down window, then the unplug runs.
  Burn(0);
  const auto load_stop = std::chrono::steady_clock::now();
  bool unplugged = false;
  steps = PassUntil(
      [&] {
        unplugged = !object_.status.vcpus->pending.empty() || object_.status.vcpus->qemu ||
                    object_.status.vcpus->current < 4;
        return unplugged;
      },
      90s);
  const double to_unplug_ms = MillisecondsSince(load_stop);
  ASSERT_TRUE(unplugged) << Condition(reconciler::condition::kVcpusSynced);
  EXPECT_GE(to_unplug_ms, kDownWindowMs)
      << "the unplug came before the down window had passed";
  Measure("autoscale.unplug_after_load_stop", to_unplug_ms, "ms");
  bool saw_unplug = false;
  for (const auto& step : steps) saw_unplug |= step.operation == "unplug";
  EXPECT_TRUE(saw_unplug);
  EXPECT_EQ(Recommended(), 3) << "one vCPU per decision down (scaleDown.maxStep 1)";

  // Under TCG libvirt never confirms: OutOfSync (or UnplugPending), the VM runs, and however
  // long the recommendation stays low nothing is plugged again.
  steps = PassUntil([] { return false; }, 6s);
  for (const auto& step : steps) {
    EXPECT_NE(step.operation, "plug") << "vCPU " << step.id << " plugged again after an unplug";
  }
  const std::string synced = Condition(reconciler::condition::kVcpusSynced);
  EXPECT_TRUE(synced.rfind("OutOfSync", 0) == 0 || synced.rfind("UnplugPending", 0) == 0 ||
              synced.rfind("InProgress", 0) == 0)
      << synced;
  EXPECT_EQ(DomainStateOf(guest_->name()), "running");
}

}  // namespace
}  // namespace hotplug::e2e

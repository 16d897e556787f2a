// Hooks: run without a shell, told what happens, bounded in time, confined to their folder.
#include "reconciler/hooks.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/reconciler/test_util.h"

namespace hotplug::reconciler {
namespace {

namespace fs = std::filesystem;

class HooksTest : public testing::ReconcilerFixture {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hooks-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    options_.hooks_dir = dir_.string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& body) {
    std::ofstream(dir_ / name) << "#!/bin/sh\n" << body << "\n";
    chmod((dir_ / name).c_str(), 0755);
  }
  fs::path dir_;
};

TEST_F(HooksTest, MissingHookIsNotAnError) {
  HookOutcome o = RunHook(dir_.string(), "before_set_vcpu", {}, std::chrono::seconds(1));
  EXPECT_FALSE(o.ran);
  EXPECT_TRUE(o.ok);
}

TEST_F(HooksTest, HookSeesItsEnvironmentAndNothingElse) {
  Write("h", "echo \"$HOTPLUG_VCPU $HOTPLUG_OPERATION ${HOME:-nohome}\" > \"$OUT\"");
  std::string out = (dir_ / "out").string();
  HookOutcome o = RunHook(dir_.string(), "h", {{"HOTPLUG_VCPU", "3"}, {"HOTPLUG_OPERATION", "plug"}, {"OUT", out}},
                          std::chrono::seconds(5));
  EXPECT_TRUE(o.ran);
  EXPECT_TRUE(o.ok) << o.message;
  std::string line;
  std::getline(std::ifstream(out), line);
  EXPECT_EQ(line, "3 plug nohome");
}

TEST_F(HooksTest, FailureAndTimeoutAreReported) {
  Write("fail", "exit 3");
  HookOutcome o = RunHook(dir_.string(), "fail", {}, std::chrono::seconds(5));
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.message.find("exited with code 3"), std::string::npos);

  Write("slow", "exec sleep 30");
  auto start = std::chrono::steady_clock::now();
  o = RunHook(dir_.string(), "slow", {}, std::chrono::milliseconds(200));
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.message.find("did not finish within 200 ms"), std::string::npos) << o.message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(HooksTest, SymlinkOutOfTheFolderIsRefused) {
  fs::create_symlink("/bin/true", dir_ / "escape");
  HookOutcome o = RunHook(dir_.string(), "escape", {}, std::chrono::seconds(5));
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.message.find("outside the hooks folder"), std::string::npos);
}

TEST_F(HooksTest, NonExecutableHookFails) {
  std::ofstream(dir_ / "plain") << "x";
  HookOutcome o = RunHook(dir_.string(), "plain", {}, std::chrono::seconds(5));
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.message.find("not executable"), std::string::npos);
}

TEST_F(HooksTest, FailingBeforeHookSkipsTheStepWithHookFailed) {
  backends::fake::DomainSpec spec;
  spec.name = "vm";
  spec.current_vcpus = 1;
  hv_.AddDomain(spec);
  Write("before_set_vcpu", "[ \"$HOTPLUG_VCPU\" = 2 ] && exit 1; exit 0");
  auto vm = testing::MakeVm("vm", 4);
  Result r = Pass(vm);
  ASSERT_EQ(hv_.SuccessfulCalls().size(), 1u);  // vCPU 1 plugged, 2 skipped, pass stopped
  EXPECT_EQ(hv_.SuccessfulCalls()[0].id, 1u);
  ASSERT_EQ(vm.status.failures.size(), 1u);
  EXPECT_EQ(vm.status.failures[0].reason, ReasonName(Reason::kHookFailed));
  EXPECT_EQ(vm.status.failures[0].id, 2);
  EXPECT_EQ(Cond(vm, condition::kVcpusSynced).reason, ReasonName(Reason::kPartialFailure));
  EXPECT_TRUE(r.requeue_with_backoff);
}

TEST_F(HooksTest, AfterHookIsToldTheResult) {
  backends::fake::DomainSpec spec;
  spec.name = "vm";
  spec.current_vcpus = 1;
  hv_.AddDomain(spec);
  std::string log = (dir_ / "log").string();
  Write("after_set_vcpu", "echo \"$HOTPLUG_DOMAIN $HOTPLUG_VCPU $HOTPLUG_RESULT\" >> " + log);
  auto vm = testing::MakeVm("vm", 3);
  Pass(vm);
  std::ifstream in(log);
  std::string a, b;
  std::getline(in, a);
  std::getline(in, b);
  EXPECT_EQ(a, "vm 1 success");
  EXPECT_EQ(b, "vm 2 success");
}

}  // namespace
}  // namespace hotplug::reconciler

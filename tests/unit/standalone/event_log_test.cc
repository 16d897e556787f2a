// The standalone event recorder: one JSON line per Event in the events file, rotated past
// its size limit; without a file, log lines only.
#include "controller/standalone/event_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/unit/standalone/test_util.h"

namespace hotplug::controller::standalone {
namespace {

using testing::TempDir;

crd::ElasticVM Vm() {
  crd::ElasticVM vm;
  vm.metadata.name = "web-01";
  vm.metadata.namespace_ = "prod";
  return vm;
}

std::vector<nlohmann::json> Lines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// A status folder in a temp DIR, opened (and locked) as standalone mode does.
struct StatusFolder {
  StatusFolder() : status(dir.path()) {
    std::string error;
    EXPECT_TRUE(status.Open(&error)) << error;
  }
  TempDir dir;
  StatusDir status;
};

TEST(LogEventRecorderTest, AppendsOneJsonLinePerEvent) {
  StatusFolder folder;
  reconciler::FakeClock clock;
  LogEventRecorder recorder(&folder.status, clock);
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "VcpuPlugged", "plugged vcpu 1"});
  recorder.Record(Vm(), {reconciler::Event::Type::kWarning, "PartialFailure", "vcpu 3: \"x\""});

  auto lines = Lines(folder.dir.Read(".status/events.log"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["object"], "prod/web-01");
  EXPECT_EQ(lines[0]["type"], "Normal");
  EXPECT_EQ(lines[0]["reason"], "VcpuPlugged");
  EXPECT_EQ(lines[1]["type"], "Warning");
  EXPECT_EQ(lines[1]["message"], "vcpu 3: \"x\"");
  EXPECT_EQ(lines[1]["time"], reconciler::FormatRfc3339(clock.Now()));
  struct stat info {};
  ASSERT_EQ(stat(folder.dir.File(".status/events.log").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST(LogEventRecorderTest, RotatesPastTheSizeLimit) {
  StatusFolder folder;
  reconciler::FakeClock clock;
  LogEventRecorder recorder(&folder.status, clock, /*rotate_bytes=*/200);
  for (int i = 0; i < 10; ++i) {
    recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "event " + std::to_string(i)});
  }
  EXPECT_TRUE(folder.dir.Exists(".status/events.log.1"));
  auto lines = Lines(folder.dir.Read(".status/events.log"));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["message"], "event 9");
  EXPECT_LE(folder.dir.Read(".status/events.log").size(), 400u);
}

TEST(LogEventRecorderTest, WithoutAFolderOnlyLogs) {
  TempDir dir;
  reconciler::FakeClock clock;
  LogEventRecorder recorder(nullptr, clock);
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "m"});
  EXPECT_FALSE(dir.Exists(".status/events.log"));
}

TEST(LogEventRecorderTest, NeverFollowsASymlinkNorBlocksOnAFifo) {
  StatusFolder folder;
  folder.dir.Write("victim", "theirs\n");
  ASSERT_EQ(
      symlink(folder.dir.File("victim").c_str(), folder.dir.File(".status/events.log").c_str()), 0);
  reconciler::FakeClock clock;
  {
    LogEventRecorder recorder(&folder.status, clock);
    recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "m"});
  }
  EXPECT_EQ(folder.dir.Read("victim"), "theirs\n");

  folder.dir.Remove(".status/events.log");
  ASSERT_EQ(mkfifo(folder.dir.File(".status/events.log").c_str(), 0600), 0);
  LogEventRecorder recorder(&folder.status, clock);
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "m"});  // returns: no reader
  SUCCEED();
}

TEST(LogEventRecorderTest, FollowsTheStatusFolderWhenItIsMadeAgain) {
  StatusFolder folder;
  reconciler::FakeClock clock;
  LogEventRecorder recorder(&folder.status, clock);
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "before"});
  std::filesystem::remove_all(folder.dir.File(".status"));
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "after"});
  auto lines = Lines(folder.dir.Read(".status/events.log"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["message"], "after");
}

}  // namespace
}  // namespace hotplug::controller::standalone

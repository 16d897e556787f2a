// The standalone event recorder: one JSON line per Event in the events file, rotated past
// its size limit; without a file, log lines only.
#include "controller/standalone/event_log.h"

#include <gtest/gtest.h>

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

TEST(LogEventRecorderTest, AppendsOneJsonLinePerEvent) {
  TempDir dir;
  reconciler::FakeClock clock;
  LogEventRecorder recorder(dir.File("events.log"), clock);
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "VcpuPlugged", "plugged vcpu 1"});
  recorder.Record(Vm(), {reconciler::Event::Type::kWarning, "PartialFailure", "vcpu 3: \"x\""});

  auto lines = Lines(dir.Read("events.log"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["object"], "prod/web-01");
  EXPECT_EQ(lines[0]["type"], "Normal");
  EXPECT_EQ(lines[0]["reason"], "VcpuPlugged");
  EXPECT_EQ(lines[1]["type"], "Warning");
  EXPECT_EQ(lines[1]["message"], "vcpu 3: \"x\"");
  EXPECT_EQ(lines[1]["time"], reconciler::FormatRfc3339(clock.Now()));
}

TEST(LogEventRecorderTest, RotatesPastTheSizeLimit) {
  TempDir dir;
  reconciler::FakeClock clock;
  LogEventRecorder recorder(dir.File("events.log"), clock, /*rotate_bytes=*/200);
  for (int i = 0; i < 10; ++i) {
    recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "event " + std::to_string(i)});
  }
  EXPECT_TRUE(dir.Exists("events.log.1"));
  auto lines = Lines(dir.Read("events.log"));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["message"], "event 9");
  EXPECT_LE(dir.Read("events.log").size(), 400u);
}

TEST(LogEventRecorderTest, WithoutAFileOnlyLogs) {
  TempDir dir;
  reconciler::FakeClock clock;
  LogEventRecorder recorder("", clock);
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "m"});
  EXPECT_FALSE(dir.Exists("events.log"));
}

TEST(LogEventRecorderTest, AnUnwritableFileDoesNotStopRecording) {
  TempDir dir;
  reconciler::FakeClock clock;
  LogEventRecorder recorder(dir.File("missing/events.log"), clock);
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "m"});
  recorder.Record(Vm(), {reconciler::Event::Type::kNormal, "R", "m"});
  SUCCEED();
}

}  // namespace
}  // namespace hotplug::controller::standalone

// backends/libvirt/load_stats.h's parsers: libvirt's vCPU bulk-stats keys and the balloon's
// memory statistics, no daemon needed.
#include "backends/libvirt/load_stats.h"

#include <gtest/gtest.h>

namespace hotplug::backends::libvirt {
namespace {

TEST(LoadStatsTest, RunningVcpusWithTheirTimeAndWaitByIdOnly) {
  const std::vector<std::pair<std::string, uint64_t>> params = {
      {"vcpu.current", 3},     {"vcpu.maximum", 8},
      {"vcpu.0.state", 1},     {"vcpu.0.time", 5'000},   {"vcpu.0.wait", 7},
      {"vcpu.2.state", 1},     {"vcpu.2.time", 9'000},   {"vcpu.2.wait", 0},
      {"vcpu.2.delay", 40},  // the run-queue delay wins over "wait" (schedstats off: 0)
      {"vcpu.3.state", 0},     {"vcpu.3.time", 1},      // offline: no thread
      {"vcpu.x.time", 4},      {"vcpu.5", 3},           {"vcpu.6.state", 1},  // no time
  };
  const std::vector<VcpuTime> vcpus = ParseVcpuStats(params);
  ASSERT_EQ(vcpus.size(), 2u);
  EXPECT_EQ(vcpus[0].id, 0u);
  EXPECT_EQ(vcpus[0].busy_ns, 5'000u);
  EXPECT_EQ(vcpus[0].wait_ns, 7u);
  EXPECT_EQ(vcpus[1].id, 2u);
  EXPECT_EQ(vcpus[1].wait_ns, 40u);
}

TEST(LoadStatsTest, MemoryStatsAreBytesAndAbsentWithoutThePeriod) {
  // Only "actual" and "rss": what libvirt reports while the stats period is 0.
  EXPECT_FALSE(ParseMemoryStats({{VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON, 524288},
                                 {VIR_DOMAIN_MEMORY_STAT_RSS, 100000}}));
  const std::optional<MemoryLoad> load =
      ParseMemoryStats({{VIR_DOMAIN_MEMORY_STAT_AVAILABLE, 500'000},
                        {VIR_DOMAIN_MEMORY_STAT_USABLE, 300'000},
                        {VIR_DOMAIN_MEMORY_STAT_UNUSED, 200'000},
                        {VIR_DOMAIN_MEMORY_STAT_DISK_CACHES, 50'000}});
  ASSERT_TRUE(load);
  EXPECT_EQ(load->available_bytes, 500'000ull * 1024);
  EXPECT_EQ(load->usable_bytes, 300'000ull * 1024);
  EXPECT_EQ(load->unused_bytes, 200'000ull * 1024);
  EXPECT_EQ(load->disk_caches_bytes, 50'000ull * 1024);
  EXPECT_FALSE(load->balloon_bytes);
}

}  // namespace
}  // namespace hotplug::backends::libvirt

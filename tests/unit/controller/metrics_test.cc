// The Prometheus metrics, read the way Prometheus reads them: over HTTP from the Exposer
// bound to 127.0.0.1 port 0. Names, labels, buckets and the derived gauges are the contract
// that deploy/monitoring's dashboard and alerts rely on (docs/metrics.md).
#include "controller/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "reconciler/clock.h"

namespace hotplug::controller {
namespace {

using namespace std::chrono_literals;

// GET http://127.0.0.1:port/path with HTTP/1.0; returns the whole answer ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof buffer)) > 0) answer.append(buffer, n);
    }
  }
  close(fd);
  return answer;
}

// The body of a scrape as a map "name{labels}" -> value, and the # TYPE of each family.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;

  explicit Exposition(const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("# TYPE ", 0) == 0) {
        std::istringstream words(line.substr(7));
        std::string name, type;
        words >> name >> type;
        types[name] = type;
        continue;
      }
      if (line.empty() || line[0] == '#') continue;
      auto space = line.rfind(' ');
      samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
  }
  std::optional<double> Get(const std::string& series) const {
    auto it = samples.find(series);
    if (it == samples.end()) return std::nullopt;
    return it->second;
  }
};

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(metrics_.Serve("127.0.0.1:0", &error)) << error;
    ASSERT_GT(metrics_.port(), 0);
  }

  Exposition ScrapeOverHttp() {
    std::string answer = HttpGet(metrics_.port(), "/metrics");
    EXPECT_NE(answer.find("200 OK"), std::string::npos) << answer.substr(0, 200);
    auto body = answer.find("\r\n\r\n");
    return Exposition(body == std::string::npos ? "" : answer.substr(body + 4));
  }

  static crd::ElasticVM Object(const std::string& name, int64_t generation, int64_t vcpus) {
    crd::ElasticVM object;
    object.metadata.name = name;
    object.metadata.namespace_ = "default";
    object.metadata.generation = generation;
    object.spec.cpu.vcpus = vcpus;
    return object;
  }

  static crd::ElasticVMStatus Status(int64_t observed_generation, int64_t current_vcpus,
                                     const std::string& ready, const std::string& reason) {
    crd::ElasticVMStatus status;
    status.observed_generation = observed_generation;
    status.vcpus = crd::VcpuStatus{};
    status.vcpus->current = current_vcpus;
    status.conditions.push_back({"Ready", ready, reason, "", "", observed_generation});
    status.conditions.push_back({"VCPUsSynced", ready, reason, "", "", observed_generation});
    return status;
  }

  reconciler::FakeClock clock_;
  PrometheusMetrics metrics_{"1.2.3", clock_};
};

TEST_F(MetricsTest, ServesOnAnEphemeralPortOfLoopbackWithBuildInfo) {
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_build_info{version=\"1.2.3\"}"), 1);
  EXPECT_EQ(scrape.types["hotplug_build_info"], "gauge");
}

TEST_F(MetricsTest, VcpuHistogramHasBucketsFromOneMillisecondToSixtySeconds) {
  metrics_.VcpuOperation("plug", "success", 0.015);
  metrics_.VcpuOperation("plug", "success", 0.020);
  metrics_.VcpuOperation("unplug", "pending", 5.0);
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.types["hotplug_vcpu_operation_duration_seconds"], "histogram");
  const std::string plug =
      "hotplug_vcpu_operation_duration_seconds_bucket{operation=\"plug\",result=\"success\",le=";
  const std::vector<std::string> bounds = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                           "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                           "2.5",   "5",      "10",    "30",   "60"};
  for (const auto& bound : bounds) {
    ASSERT_TRUE(scrape.Get(plug + "\"" + bound + "\"}")) << bound;
  }
  EXPECT_EQ(scrape.Get(plug + "\"0.01\"}"), 0);
  EXPECT_EQ(scrape.Get(plug + "\"0.025\"}"), 2);
  EXPECT_EQ(scrape.Get(plug + "\"+Inf\"}"), 2);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_operation_duration_seconds_count{operation=\"plug\","
                       "result=\"success\"}"),
            2);
  EXPECT_NEAR(*scrape.Get("hotplug_vcpu_operation_duration_seconds_sum{operation=\"plug\","
                          "result=\"success\"}"),
              0.035, 1e-9);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_operation_duration_seconds_bucket{operation=\"unplug\","
                       "result=\"pending\",le=\"2.5\"}"),
            0);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_operation_duration_seconds_bucket{operation=\"unplug\","
                       "result=\"pending\",le=\"5\"}"),
            1);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_operations_total{operation=\"plug\",result=\"success\"}"), 2);
}

TEST_F(MetricsTest, EveryBoundedSeriesExistsAtZeroBeforeTheFirstEvent) {
  Exposition scrape = ScrapeOverHttp();
  for (const char* operation : {"plug", "unplug", "online"}) {
    for (const char* result : {"success", "failure", "pending"}) {
      std::string labels =
          std::string("{operation=\"") + operation + "\",result=\"" + result + "\"}";
      EXPECT_EQ(scrape.Get("hotplug_vcpu_operations_total" + labels), 0) << labels;
      EXPECT_EQ(scrape.Get("hotplug_vcpu_operation_duration_seconds_count" + labels), 0);
    }
  }
  EXPECT_EQ(scrape.Get("hotplug_memory_operation_duration_seconds_count{operation=\"attach\","
                       "result=\"failure\"}"),
            0);
  EXPECT_EQ(scrape.Get("hotplug_reconcile_total{result=\"error\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_leader"), 0);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_drift"), 0);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"True\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_sync_duration_seconds_count"), 0);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"PartialFailure\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"Other\"}"), 0);
  for (const char* reason :
       {"OperationInvalid", "Timeout", "GuestAgentUnavailable", "HookFailed"}) {
    for (const char* resource : {"vcpu", "memory"}) {
      EXPECT_EQ(scrape.Get(std::string("hotplug_operation_failures_total{reason=\"") + reason +
                           "\",resource=\"" + resource + "\"}"),
                0)
          << reason << " " << resource;
    }
  }
}

TEST_F(MetricsTest, MemoryOperationsHaveTheirOwnHistogram) {
  metrics_.MemoryOperation("attach", "success", 0.021);
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_memory_operation_duration_seconds_bucket{operation=\"attach\","
                       "result=\"success\",le=\"0.025\"}"),
            1);
  EXPECT_EQ(scrape.Get("hotplug_memory_operations_total{operation=\"attach\",result=\"success\"}"),
            1);
}

TEST_F(MetricsTest, SyncDurationRunsFromANewGenerationOnTheWatchToReadyForIt) {
  crd::ElasticVM object = Object("web-01", 2, 4);
  object.status = Status(1, 2, "True", "Synced");  // ready, but for the previous generation
  metrics_.ObjectChanged("default/web-01", &object);
  clock_.Advance(1500ms);
  // Not ready yet: no observation.
  metrics_.StatusWritten(object, Status(2, 3, "False", "InProgress"));
  // The watch echoes our status write: same generation, the clock keeps running.
  object.status = Status(2, 3, "False", "InProgress");
  metrics_.ObjectChanged("default/web-01", &object);
  clock_.Advance(1500ms);
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_sync_duration_seconds_count"), 0);
  metrics_.StatusWritten(object, Status(2, 4, "True", "Synced"));
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.types["hotplug_sync_duration_seconds"], "histogram");
  EXPECT_EQ(scrape.Get("hotplug_sync_duration_seconds_count"), 1);
  EXPECT_NEAR(*scrape.Get("hotplug_sync_duration_seconds_sum"), 3.0, 1e-6);
  EXPECT_EQ(scrape.Get("hotplug_sync_duration_seconds_bucket{le=\"2.5\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_sync_duration_seconds_bucket{le=\"5\"}"), 1);
  // A later Ready write for the same generation is not a second sync.
  metrics_.StatusWritten(object, Status(2, 4, "True", "Synced"));
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_sync_duration_seconds_count"), 1);
}

TEST_F(MetricsTest, ReadyForAnOlderGenerationDoesNotStopTheClock) {
  crd::ElasticVM object = Object("web-01", 3, 4);
  metrics_.ObjectChanged("default/web-01", &object);
  clock_.Advance(1s);
  metrics_.StatusWritten(object, Status(2, 4, "True", "Synced"));
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_sync_duration_seconds_count"), 0);
  metrics_.StatusWritten(object, Status(3, 4, "True", "Synced"));
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_sync_duration_seconds_count"), 1);
}

TEST_F(MetricsTest, AnObjectAlreadyReadyWhenFirstSeenStartsNoClock) {
  crd::ElasticVM object = Object("web-01", 5, 4);
  object.status = Status(5, 4, "True", "Synced");
  metrics_.ObjectChanged("default/web-01", &object);  // e.g. the list after a restart
  metrics_.StatusWritten(object, Status(5, 4, "True", "Synced"));
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_sync_duration_seconds_count"), 0);
}

TEST_F(MetricsTest, ElasticVMsAreCountedByConditionAndReasonAndDriftIsSummed) {
  crd::ElasticVM ready = Object("a", 1, 4);
  ready.status = Status(1, 4, "True", "Synced");
  crd::ElasticVM growing = Object("b", 1, 6);
  growing.status = Status(1, 3, "False", "PartialFailure");
  crd::ElasticVM shrinking = Object("c", 1, 2);
  shrinking.status = Status(1, 4, "False", "UnplugPending");
  crd::ElasticVM fresh = Object("d", 1, 2);  // no status yet: no drift known
  for (const crd::ElasticVM* object : {&ready, &growing, &shrinking, &fresh}) {
    metrics_.ObjectChanged(object->Key(), object);
  }
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"True\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"False\"}"), 2);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"Unknown\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"MemorySynced\",status=\"Unknown\"}"), 4);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"PartialFailure\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"None\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_drift"), 3 + 2);

  metrics_.ObjectChanged(growing.Key(), nullptr);  // deleted
  shrinking.status.conditions[0].reason = "SomethingHandWritten";
  metrics_.ObjectChanged(shrinking.Key(), &shrinking);
  scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"False\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"PartialFailure\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"Other\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_drift"), 2);
}

// The counts are kept as objects change, not recounted at each scrape: every change of one
// object replaces what it counted before (its own status write, the watch's echo of it, a
// later change), and a delete, even a repeated one, takes away only what it counted.
TEST_F(MetricsTest, EachChangeOfAnObjectReplacesWhatItCounted) {
  crd::ElasticVM object = Object("a", 1, 4);
  object.status = Status(1, 2, "False", "InProgress");
  metrics_.ObjectChanged(object.Key(), &object);
  metrics_.StatusWritten(object, Status(1, 3, "False", "PartialFailure"));
  object.status = Status(1, 3, "False", "PartialFailure");
  metrics_.ObjectChanged(object.Key(), &object);  // the watch's echo of the write
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"False\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"InProgress\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"PartialFailure\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_drift"), 1);

  metrics_.StatusWritten(object, Status(1, 4, "True", "Synced"));
  scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"False\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"True\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"Synced\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_drift"), 0);

  // A status written for an object the watch has not delivered yet counts it too.
  crd::ElasticVM other = Object("b", 1, 6);
  metrics_.StatusWritten(other, Status(1, 2, "False", "PartialFailure"));
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_vcpu_drift"), 4);

  for (int i = 0; i < 2; ++i) {
    metrics_.ObjectChanged(object.Key(), nullptr);
    metrics_.ObjectChanged(other.Key(), nullptr);
  }
  metrics_.ObjectChanged("default/never-seen", nullptr);
  scrape = ScrapeOverHttp();
  for (const char* status : {"True", "False", "Unknown"}) {
    for (const char* condition : {"Ready", "VCPUsSynced", "MemorySynced"}) {
      EXPECT_EQ(scrape.Get(std::string("hotplug_elasticvms{condition=\"") + condition +
                           "\",status=\"" + status + "\"}"),
                0)
          << condition << "=" << status;
    }
  }
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"Synced\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms_ready_reason{reason=\"PartialFailure\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_vcpu_drift"), 0);
}

// With spec.cpu.autoscale, spec.cpu.vcpus is only the start: the drift is against what the
// autoscaler decided (status.vcpus.desired), so an autoscaled VM that moved off its start
// count does not look drifted (HotplugVcpuDriftPersistent would fire for each of them).
TEST_F(MetricsTest, AnAutoscaledObjectsDriftIsAgainstTheDecidedCount) {
  crd::ElasticVM scaled = Object("scaled", 1, 1);
  scaled.spec.cpu.autoscale = crd::CpuAutoscale{};
  scaled.status = Status(1, 4, "True", "Synced");
  scaled.status.vcpus->desired = 4;
  metrics_.ObjectChanged(scaled.Key(), &scaled);
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_vcpu_drift"), 0);
  scaled.status.vcpus->desired = 3;  // a scale-down under way
  metrics_.ObjectChanged(scaled.Key(), &scaled);
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_vcpu_drift"), 1);
}

TEST_F(MetricsTest, FailuresAreCountedOnceWhenTheStatusFirstCarriesThem) {
  crd::ElasticVM object = Object("web-01", 1, 4);
  crd::ElasticVMStatus status = Status(1, 3, "False", "PartialFailure");
  status.failures.push_back({"vcpu", 3, "plug", "OperationInvalid", "no", "t1"});
  metrics_.StatusWritten(object, status);
  object.status = status;
  // Rewritten with one more failure: only the new one counts.
  status.failures.push_back({"memory", std::nullopt, "attach", "HookFailed", "no", "t2"});
  metrics_.StatusWritten(object, status);
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_operation_failures_total{reason=\"OperationInvalid\","
                       "resource=\"vcpu\"}"),
            1);
  EXPECT_EQ(scrape.Get("hotplug_operation_failures_total{reason=\"HookFailed\","
                       "resource=\"memory\"}"),
            1);
}

TEST_F(MetricsTest, WorkQueueMetricsCarryControllerRuntimeNamesAndTheQueueName) {
  WorkQueueMetrics& queue = *metrics_.QueueMetrics();
  queue.Added();
  queue.Added();
  queue.Depth(2);
  queue.QueueLatency(0.002);  // a worker takes a key...
  queue.Depth(1);
  clock_.Advance(3s);
  queue.QueueLatency(0.5);  // ...and another one
  clock_.Advance(1s);
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("workqueue_adds_total{name=\"elasticvm\"}"), 2);
  EXPECT_EQ(scrape.Get("workqueue_depth{name=\"elasticvm\"}"), 1);
  EXPECT_EQ(scrape.Get("workqueue_queue_duration_seconds_count{name=\"elasticvm\"}"), 2);
  EXPECT_EQ(scrape.Get("workqueue_queue_duration_seconds_bucket{name=\"elasticvm\",le=\"1\"}"), 2);
  EXPECT_NEAR(*scrape.Get("workqueue_unfinished_work_seconds{name=\"elasticvm\"}"), 4 + 1, 1e-6);
  EXPECT_NEAR(*scrape.Get("workqueue_longest_running_processor_seconds{name=\"elasticvm\"}"), 4,
              1e-6);

  queue.WorkDuration(4.0);  // the first one is done
  queue.Retried();
  scrape = ScrapeOverHttp();
  EXPECT_NEAR(*scrape.Get("workqueue_unfinished_work_seconds{name=\"elasticvm\"}"), 1, 1e-6);
  EXPECT_NEAR(*scrape.Get("workqueue_longest_running_processor_seconds{name=\"elasticvm\"}"), 1,
              1e-6);
  EXPECT_EQ(scrape.Get("workqueue_work_duration_seconds_count{name=\"elasticvm\"}"), 1);
  EXPECT_EQ(scrape.Get("workqueue_retries_total{name=\"elasticvm\"}"), 1);
  queue.WorkDuration(1.0);
  scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("workqueue_unfinished_work_seconds{name=\"elasticvm\"}"), 0);
  EXPECT_EQ(scrape.Get("workqueue_longest_running_processor_seconds{name=\"elasticvm\"}"), 0);
}

TEST_F(MetricsTest, ControllerMetricsReconcilesLeaderAndWorkers) {
  metrics_.ReconcileDone("success", 0.004);
  metrics_.ReconcileDone("requeue", 0.2);
  metrics_.Leading(true);
  metrics_.ActiveWorkers(2);
  metrics_.StatusWrite("failure");
  metrics_.EventRecorded("Warning", "VcpuPlugFailed");
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_reconcile_total{result=\"success\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_reconcile_total{result=\"requeue\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_reconcile_duration_seconds_count"), 2);
  EXPECT_EQ(scrape.Get("hotplug_leader"), 1);
  EXPECT_EQ(scrape.Get("hotplug_active_workers"), 2);
  EXPECT_EQ(scrape.Get("hotplug_status_writes_total{result=\"failure\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_events_total{reason=\"VcpuPlugFailed\",type=\"Warning\"}"), 1);
  metrics_.Leading(false);
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_leader"), 0);
}

TEST_F(MetricsTest, InformerCountsReconnectsAndRelistsButNotTheFirstList) {
  // No informer activity yet (or none at all: standalone): no timestamp to alert on.
  EXPECT_FALSE(ScrapeOverHttp().Get("hotplug_informer_last_activity_timestamp_seconds"));
  metrics_.Listed(10, 0.1);
  metrics_.WatchEvent("BOOKMARK");
  metrics_.WatchRestarted("closed");
  metrics_.WatchRestarted("gone");
  metrics_.Listed(12, 0.1);
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_informer_lists_total"), 2);
  EXPECT_EQ(scrape.Get("hotplug_informer_relists_total"), 1);
  EXPECT_EQ(scrape.Get("hotplug_informer_reconnects_total{reason=\"closed\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_informer_reconnects_total{reason=\"gone\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_informer_reconnects_total{reason=\"http_error\"}"), 0);
  EXPECT_EQ(scrape.Get("hotplug_informer_watch_events_total{type=\"BOOKMARK\"}"), 1);
  EXPECT_EQ(scrape.Get("hotplug_informer_cache_objects"), 12);
  auto unix_now = std::chrono::duration<double>(clock_.Now().time_since_epoch()).count();
  EXPECT_NEAR(*scrape.Get("hotplug_informer_last_activity_timestamp_seconds"), unix_now, 1);
}

TEST_F(MetricsTest, ApiRequestsByCodeAndMethod) {
  metrics_.Request("GET", 200, 0.01);
  metrics_.Request("PATCH", 0, 15);
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("rest_client_requests_total{code=\"200\",method=\"GET\"}"), 1);
  EXPECT_EQ(scrape.Get("rest_client_requests_total{code=\"<error>\",method=\"PATCH\"}"), 1);
  EXPECT_EQ(scrape.Get("rest_client_request_duration_seconds_count{verb=\"PATCH\"}"), 1);
}

TEST_F(MetricsTest, NoSeriesCarriesAPerObjectLabel) {
  crd::ElasticVM object = Object("web-01", 1, 4);
  object.status = Status(1, 2, "False", "PartialFailure");
  object.status.failures.push_back({"vcpu", 3, "plug", "OperationInvalid", "no", "t1"});
  metrics_.ObjectChanged(object.Key(), &object);
  metrics_.StatusWritten(Object("web-01", 1, 4), object.status);
  metrics_.VcpuOperation("plug", "failure", 0.01);
  metrics_.Listed(1, 0.1);
  const std::set<std::string> allowed = {"operation", "result", "le",       "name", "condition",
                                         "status",    "reason", "resource", "type", "version",
                                         "code",      "method", "verb"};
  const std::regex label_name(R"(([a-z_]+)=")");
  for (const auto& [series, value] : ScrapeOverHttp().samples) {
    auto name = series.substr(0, series.find('{'));
    if (name.rfind("exposer_", 0) == 0) continue;  // prometheus-cpp's own, about scrapes
    EXPECT_EQ(series.find("web-01"), std::string::npos) << series;
    for (std::sregex_iterator it(series.begin(), series.end(), label_name), end; it != end; ++it) {
      EXPECT_TRUE(allowed.count((*it)[1].str())) << series;
    }
    EXPECT_TRUE(name.rfind("hotplug_", 0) == 0 || name.rfind("workqueue_", 0) == 0 ||
                name.rfind("rest_client_", 0) == 0)
        << series;
  }
}

TEST(MetricsServeTest, RefusesAMalformedAddressAndAPortInUse) {
  reconciler::FakeClock clock;
  std::string error;
  // A bare port is refused as the health server refuses it (one parser, controller-runtime's
  // meaning).
  for (const char* address : {"", "localhost", "127.0.0.1:", ":http", ":99999", "8081"}) {
    PrometheusMetrics metrics("x", clock);  // never serves: nothing to stop
    EXPECT_FALSE(metrics.Serve(address, &error)) << address;
    EXPECT_NE(error.find("metrics bind address"), std::string::npos) << error;
  }
  PrometheusMetrics first("x", clock), second("x", clock);
  ASSERT_TRUE(first.Serve("127.0.0.1:0", &error)) << error;
  error.clear();
  EXPECT_FALSE(second.Serve("127.0.0.1:" + std::to_string(first.port()), &error));
  EXPECT_NE(error.find("cannot serve metrics"), std::string::npos) << error;
  EXPECT_EQ(second.port(), 0);
}

TEST(MetricsServeTest, AColonPortAddressListensOnEveryInterface) {
  reconciler::FakeClock clock;
  PrometheusMetrics metrics("x", clock);
  std::string error;
  ASSERT_TRUE(metrics.Serve(":0", &error)) << error;
  EXPECT_NE(HttpGet(metrics.port(), "/metrics").find("hotplug_build_info"), std::string::npos);
}

// The decorators report and pass everything on unchanged.
class OneObjectSource final : public ObjectSource, public StatusWriter {
 public:
  void Start(ChangeHandler on_change) override { handler = std::move(on_change); }
  void Stop() override {}
  bool HasSynced() const override { return true; }
  std::optional<crd::ElasticVM> Get(const std::string& key) const override {
    if (!object || key != object->Key()) return std::nullopt;
    return object;
  }
  std::vector<std::string> Keys() const override { return {}; }
  bool WriteStatus(const crd::ElasticVM&, const crd::ElasticVMStatus&,
                   std::string* error) override {
    if (fail) *error = "conflict";
    return !fail;
  }
  ChangeHandler handler;
  std::optional<crd::ElasticVM> object;
  bool fail = false;
};

TEST_F(MetricsTest, MeteredSourceAndWriterReportWhatPassesThrough) {
  OneObjectSource inner;
  MeteredSource source(inner, metrics_);
  MeteredStatusWriter writer(inner, metrics_);
  std::vector<std::string> delivered;
  source.Start([&](const std::string& key) { delivered.push_back(key); });
  inner.object = Object("web-01", 1, 4);
  inner.handler("default/web-01");
  EXPECT_EQ(delivered, std::vector<std::string>{"default/web-01"});
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_elasticvms{condition=\"Ready\",status=\"Unknown\"}"), 1);
  clock_.Advance(2s);
  std::string error;
  inner.fail = true;
  EXPECT_FALSE(writer.WriteStatus(*inner.object, Status(1, 4, "True", "Synced"), &error));
  EXPECT_EQ(error, "conflict");
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_sync_duration_seconds_count"), 0);
  inner.fail = false;
  EXPECT_TRUE(writer.WriteStatus(*inner.object, Status(1, 4, "True", "Synced"), &error));
  Exposition scrape = ScrapeOverHttp();
  EXPECT_EQ(scrape.Get("hotplug_sync_duration_seconds_count"), 1);
  EXPECT_EQ(scrape.Get("hotplug_elasticvms{condition=\"Ready\",status=\"True\"}"), 1);
  inner.object.reset();
  inner.handler("default/web-01");
  EXPECT_EQ(ScrapeOverHttp().Get("hotplug_elasticvms{condition=\"Ready\",status=\"True\"}"), 0);
}

}  // namespace
}  // namespace hotplug::controller

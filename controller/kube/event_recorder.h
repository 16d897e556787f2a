// Records core/v1 Events on ElasticVMs, the way `kubectl describe` shows them. Repeats of the
// same event (same object, type, reason and message) are aggregated: the existing Event's
// count and lastTimestamp are PATCHed instead of creating another. Recording never blocks a
// worker: events go through a bounded queue to one thread ("event-recorder"); when the API
// is down they are dropped after a log line, as client-go's broadcaster does.
#pragma once

#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/thread_annotations.h"
#include "controller/kube/client.h"
#include "controller/source.h"

namespace hotplug::controller::kube {

class KubeEventRecorder final : public EventRecorder {
 public:
  struct Options {
    std::string component = "hotplug-operator";
    std::string host;           // source.host / reportingInstance (the node name)
    size_t queue_limit = 1000;  // events waiting to be sent; more are dropped
    // An Event the API could not take (no answer, 5xx, 429) is sent again after a backoff
    // that doubles from `retry_initial` up to `retry_max`, at most `max_attempts` times
    // (client-go's broadcaster does the same: 12 tries, 10 s apart).
    int max_attempts = 12;
    std::chrono::milliseconds retry_initial{500};
    std::chrono::milliseconds retry_max{10'000};
    size_t remembered = 4096;  // distinct events remembered for aggregation
  };
  KubeEventRecorder(Client& client, Options options);
  ~KubeEventRecorder() override;

  void Record(const crd::ElasticVM& object, const reconciler::Event& event) override;
  // Stops the thread after the event being sent (bounded by the client's timeout); what is
  // still queued is dropped (call Flush first to send it).
  void Stop();
  // Waits until the queue is empty or the deadline passes (tests).
  bool Flush(std::chrono::steady_clock::time_point deadline);

 private:
  struct Pending {
    std::string ns, name, uid, resource_version;
    reconciler::Event event;
    std::string timestamp;
  };
  struct Sent {
    std::string event_name;
    int64_t count = 0;
  };
  void Run();
  // Returns false when the API answered in a way worth retrying (no answer, 5xx, 429).
  bool Send(const Pending& pending);
  // Posts a new Event (`identity` is what aggregates repeats of it).
  bool Create(const Pending& pending, const char* type, const std::string& identity);

  Client& client_;
  const Options options_;
  std::thread thread_;  // "event-recorder"

  Mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool sending_ GUARDED_BY(mu_) = false;
  // Only the recorder thread touches these.
  std::unordered_map<std::string, Sent> sent_;
  std::list<std::string> sent_order_;  // oldest first, for eviction
  uint64_t sequence_ = 0;
};

}  // namespace hotplug::controller::kube

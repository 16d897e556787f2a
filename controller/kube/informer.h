// The ElasticVM informer: LIST, then WATCH from the list's resourceVersion (with bookmarks),
// reconnecting from the last version seen when a stream closes and listing again on
// 410 Gone or an ERROR event, with capped, jittered backoff between failures. LISTs follow
// client-go's reflector: the first asks for resourceVersion=0 (the API server's watch cache),
// a relist for the last version seen, and a refused version falls back to a paged quorum read. Keeps a cache
// keyed by "namespace/name" and implements the controller's ObjectSource.
//
// Node scope (--node-name): a label selector cannot see spec.nodeName, so the informer
// watches every ElasticVM in its namespace scope and keeps only those whose TargetNode()
// (spec.nodeName, else the hotplug.dev/node label) equals the node. Objects naming no node
// are left to an operator started without --node-name. An object moved to another node
// leaves the cache as if deleted.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"
#include "controller/kube/client.h"
#include "controller/source.h"

namespace hotplug::controller::kube {

// What the informer reports; no-op defaults (the metrics engineer's seam).
class InformerMetrics {
 public:
  virtual ~InformerMetrics() = default;
  virtual void Listed(size_t objects, double seconds) { (void)objects, (void)seconds; }
  virtual void WatchEvent(std::string_view type) { (void)type; }
  // why: "closed", "broken", "gone", "error", "http_error"
  virtual void WatchRestarted(std::string_view why) { (void)why; }
  virtual void CacheSize(size_t objects) { (void)objects; }
};

class Informer final : public ObjectSource {
 public:
  struct Options {
    std::string ns;         // "" = all namespaces
    std::string node_name;  // "" = every object in scope
    // timeoutSeconds asked of each watch; the server ends the stream then and we reconnect.
    std::chrono::seconds watch_timeout{300};
    std::chrono::milliseconds backoff_initial{200};
    std::chrono::milliseconds backoff_max{30'000};
    size_t list_page_size = 500;
    InformerMetrics* metrics = nullptr;  // not owned
  };
  Informer(Client& client, Options options);
  ~Informer() override;

  void Start(ChangeHandler on_change) override;
  void Stop() override;
  bool HasSynced() const override;
  std::optional<crd::ElasticVM> Get(const std::string& key) const override;
  std::vector<std::string> Keys() const override;

  // A write of ours succeeded and the server returned `updated`: when the cache still holds
  // the version the write was based on (`based_on_rv`), take the new one now instead of
  // waiting for the watch event. No change is signalled.
  void Observed(const crd::ElasticVM& updated, const std::string& based_on_rv);

  // The last resourceVersion seen (list, event or bookmark); for tests and logs.
  std::string LastResourceVersion() const;
  // How many times the informer listed (1 + relists); for tests and logs.
  int ListCount() const;

 private:
  enum class WatchOutcome { kReconnect, kRelist, kStop };
  using CacheMap = std::unordered_map<std::string, crd::ElasticVM>;
  // Where a LIST page says to go on: the list's version and the next page's token.
  struct ListPage {
    std::string resource_version;
    std::string continue_token;
  };
  void Run();
  bool List(std::string* resource_version);
  // Every page of one LIST into `listed`; false when it failed (the cache stays as it was).
  bool ReadAllPages(CacheMap* listed, std::string* list_rv);
  // Swaps in a complete LIST and signals each key that was added, changed or removed.
  void ReplaceCache(CacheMap listed, const std::string& list_rv, double seconds);
  // The path and query of one LIST request.
  std::string ListPagePath(const std::string& asked_rv, const ListPage& page) const;
  // The resourceVersion the next LIST asks for ("" = a quorum read from etcd).
  std::string ListResourceVersion() const;
  // Decodes one LIST answer into `listed` (in-scope objects only); false on a bad answer.
  bool ReadListPage(const std::string& body, ListPage* page, CacheMap* listed);
  // The server will not serve a LIST at the version asked for.
  static bool RefusedVersion(const ApiResult& result);
  WatchOutcome WatchOnce(const std::string& resource_version);
  // What to do after a watch ended as `end` (`outcome`: what its lines asked for).
  WatchOutcome AfterWatch(const WatchEnd& end, WatchOutcome outcome, bool healthy);
  // Applies one watch line; returns false when the stream must end with `outcome`.
  bool HandleLine(std::string_view line, WatchOutcome* outcome);
  bool InScope(const crd::ElasticVM& object) const;
  void Upsert(crd::ElasticVM object);
  void Remove(const std::string& key);
  // Sleeps for the current backoff (cut short by Stop) and grows it.
  void Backoff();
  bool Stopping() const;

  Client& client_;
  const Options options_;
  InformerMetrics no_metrics_;
  InformerMetrics* metrics_;
  ChangeHandler on_change_;
  std::thread thread_;  // "informer": list + watch loop

  mutable Mutex mu_;
  std::condition_variable stop_cv_;
  CacheMap cache_ GUARDED_BY(mu_);
  bool synced_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::shared_ptr<StreamCancel> current_watch_ GUARDED_BY(mu_);
  std::string last_rv_ GUARDED_BY(mu_);
  int list_count_ GUARDED_BY(mu_) = 0;
  std::chrono::milliseconds backoff_ GUARDED_BY(mu_){0};
  // Informer thread only: the server refused the version asked for; list from etcd next.
  bool list_rv_unavailable_ = false;
  // Informer thread only: a LIST at "0" came in pages (the server has no watch cache).
  bool paginated_result_ = false;
};

}  // namespace hotplug::controller::kube

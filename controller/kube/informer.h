// The ElasticVM informer: LIST, then WATCH from the list's resourceVersion (with bookmarks),
// reconnecting from the last version seen when a stream closes and listing again on
// 410 Gone or an ERROR event, with capped, jittered backoff between failures. LISTs follow
// client-go's reflector: the first asks for resourceVersion=0 (the API server's watch cache),
// a relist for the last version seen, and a refused version falls back to a paged quorum
// read. Keeps a cache keyed by "namespace/name" and implements the controller's ObjectSource.
//
// Node scope (--node-name): the LIST and WATCH carry labelSelector=hotplug.dev/node=<node>,
// so the API server sends this agent its own objects only (controller/kube/node_scope.h has
// the rules; the central assigner keeps the label equal to spec.nodeName). An object still
// labelled for this node whose spec.nodeName names another leaves the cache as if deleted,
// and once the controller is done with it (Released) the informer writes the release
// (Ready=False, NodeChanged) that lets the assigner hand it to the other node's agent.
//
// The first LIST into an empty cache signals each object as soon as it is read, so a restart
// reconciles while a long answer is still arriving; HasSynced stays false until it is whole.
//
// The cache holds each object packed (controller/kube/packed_object.h): ~100 bytes instead
// of ~2 KB; Get decodes it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"
#include "controller/kube/client.h"
#include "controller/kube/packed_object.h"
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
  // What the API server sent: verb "list" (per page) or "watch" (per line); objects counts
  // the ElasticVMs in it, bytes the JSON.
  virtual void Received(std::string_view verb, size_t objects, size_t bytes) {
    (void)verb, (void)objects, (void)bytes;
  }
};

class Informer final : public ObjectSource {
 public:
  struct Options {
    std::string ns;         // "" = all namespaces
    std::string node_name;  // "" = every object in scope, no label selector
    // timeoutSeconds asked of each watch; the server ends the stream then and we reconnect.
    std::chrono::seconds watch_timeout{300};
    // How long a LIST may keep us waiting, for its first byte too. kube-apiserver sends no
    // part of a LIST answered from its watch cache before it has encoded the whole answer
    // (535 MB at 100,000 objects: 20-40 s on 2 cores) and gives up itself at its
    // --request-timeout (60 s by default): wait a little longer, so the server decides.
    std::chrono::seconds list_timeout{75};
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
  // The cached keys, and those waiting to be released (so a resync retries a release
  // whose write failed).
  std::vector<std::string> Keys() const override;
  // The controller is done with `key`, which is not in the cache: if it left because its
  // spec.nodeName names another node, write the release now (no pass of it runs any more).
  void Released(const std::string& key) override;

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
  using CacheMap = std::unordered_map<std::string, PackedObject>;
  using MovingMap = std::unordered_map<std::string, crd::ElasticVM>;
  // Where a LIST page says to go on: the list's version and the next page's token.
  struct ListPage {
    std::string resource_version;
    std::string continue_token;
  };
  void Run();
  bool List(std::string* resource_version);
  // Every page of one LIST into `listed` and `moving`; false when it failed (the cache stays
  // as it was).
  bool ReadAllPages(CacheMap* listed, MovingMap* moving, std::string* list_rv);
  // Swaps in a complete LIST and signals each key that was added, changed, removed or is to
  // be released.
  // `published`: the cache already holds what the list read (Publish), so `listed` is empty.
  void ReplaceCache(CacheMap listed, MovingMap moving, bool published, const std::string& list_rv,
                    double seconds);
  // The path and query of one LIST request.
  std::string ListPagePath(const std::string& asked_rv, const ListPage& page) const;
  // The resourceVersion the next LIST asks for ("" = a quorum read from etcd).
  std::string ListResourceVersion() const;
  // Decodes one LIST answer into `listed` (in-scope objects) and `moving` (those to
  // release); false on a bad answer.
  bool ReadListPage(std::istream& body, ListPage* page, CacheMap* listed, MovingMap* moving,
                    size_t* items);
  // "labelSelector=..." for an agent, "" otherwise.
  std::string SelectorQuery() const;
  // The server will not serve a LIST at the version asked for.
  static bool RefusedVersion(const ApiResult& result);
  WatchOutcome WatchOnce(const std::string& resource_version);
  // What to do after a watch ended as `end` (`outcome`: what its lines asked for).
  WatchOutcome AfterWatch(const WatchEnd& end, WatchOutcome outcome, bool healthy);
  // Applies one watch line; returns false when the stream must end with `outcome`.
  bool HandleLine(std::string_view line, WatchOutcome* outcome);
  void Upsert(crd::ElasticVM object);
  // During the first LIST: caches one object as it is read and signals it.
  void Publish(std::string key, PackedObject packed, crd::ElasticVM object);
  // The next Get of `key` at `resource_version` on this thread returns `object` (as Unpack
  // would give it) without decoding: the change handler's lookups right after a signal.
  // And one Get of it on another thread (the worker's pass that the signal queued) takes it
  // from handoff_, while fewer than kHandoffLimit wait there.
  void Remember(const std::string& key, std::string resource_version, crd::ElasticVM object) const;
  std::optional<crd::ElasticVM> TakeHandoff(const std::string& key,
                                            const std::string& resource_version) const;
  static constexpr size_t kHandoffLimit = 1024;
  // Drops `key` from the cache; with `moving`, keeps that object to release.
  void Remove(const std::string& key, std::optional<crd::ElasticVM> moving = std::nullopt);
  // Ready=False, NodeChanged on `object`'s status; false when the write failed.
  bool WriteRelease(const crd::ElasticVM& object);
  // Sleeps for the current backoff (cut short by Stop) and grows it.
  void Backoff();
  bool Stopping() const;
  // A cancel for the request about to be made, which Stop cancels until EndStream; null once
  // Stop was called.
  std::shared_ptr<StreamCancel> BeginStream();
  void EndStream();

  Client& client_;
  const Options options_;
  const uint64_t id_;  // tells this informer's decoded objects from another's (Get)
  InformerMetrics no_metrics_;
  InformerMetrics* metrics_;
  ChangeHandler on_change_;
  std::thread thread_;  // "informer": list + watch loop

  mutable Mutex mu_;
  std::condition_variable stop_cv_;
  CacheMap cache_ GUARDED_BY(mu_);
  MovingMap moving_ GUARDED_BY(mu_);  // left the cache for another node, not released yet
  // Objects just signalled, decoded, by key: their resourceVersion and the object.
  mutable std::unordered_map<std::string, std::pair<std::string, crd::ElasticVM>> handoff_
      GUARDED_BY(mu_);
  bool synced_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  // The LIST page or watch in flight, which Stop cancels.
  std::shared_ptr<StreamCancel> current_stream_ GUARDED_BY(mu_);
  std::string last_rv_ GUARDED_BY(mu_);
  int list_count_ GUARDED_BY(mu_) = 0;
  std::chrono::milliseconds backoff_ GUARDED_BY(mu_){0};
  // Informer thread only: the server refused the version asked for; list from etcd next.
  bool list_rv_unavailable_ = false;
  // Informer thread only: a LIST at "0" came in pages (the server has no watch cache).
  bool paginated_result_ = false;
  // Informer thread only: the LIST being read goes straight into the cache (List).
  bool publish_while_listing_ = false;
};

}  // namespace hotplug::controller::kube

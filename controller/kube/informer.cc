#include "controller/kube/informer.h"

#include <malloc.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "controller/kube/node_scope.h"
#include "controller/kube/status_writer.h"
#include "controller/kube/watch_event.h"
#include "controller/log.h"
#include "crd/codec.h"
#include "reconciler/conditions.h"

namespace hotplug::controller::kube {

using json = nlohmann::json;

namespace {

uint64_t NextId() {
  static std::atomic<uint64_t> next{1};
  return next++;
}

// What of an object the cache keeps: the hotplug.dev/ labels and annotations (TrimForCache),
// not the creation time, which nothing here reads.
PackedObject PackForCache(crd::ElasticVM& object) {
  TrimForCache(object);
  object.metadata.creation_timestamp.clear();
  return PackedObject::Pack(object);
}

// Each change is looked up right after it is signalled, on the informer's thread (the
// metrics, the controller's domain index): each thread keeps the last object it decoded or
// the informer cached, by informer, key and version (a version is one content).
struct LastDecoded {
  uint64_t informer = 0;
  std::string key, resource_version;
  crd::ElasticVM object;
};
LastDecoded& ThreadLastDecoded() {
  thread_local LastDecoded last;
  return last;
}

}  // namespace

Informer::Informer(Client& client, Options options)
    : client_(client),
      options_(std::move(options)),
      id_(NextId()),
      metrics_(options_.metrics ? options_.metrics : &no_metrics_) {}

Informer::~Informer() { Stop(); }

void Informer::Start(ChangeHandler on_change) {
  on_change_ = std::move(on_change);
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  std::shared_ptr<StreamCancel> stream;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    stream = current_stream_;
  }
  stop_cv_.notify_all();
  if (stream) stream->Cancel();
  if (thread_.joinable()) thread_.join();
}

bool Informer::Stopping() const {
  MutexLock lock(mu_);
  return stopping_;
}

std::shared_ptr<StreamCancel> Informer::BeginStream() {
  MutexLock lock(mu_);
  if (stopping_) return nullptr;
  current_stream_ = std::make_shared<StreamCancel>();
  return current_stream_;
}

void Informer::EndStream() {
  MutexLock lock(mu_);
  current_stream_.reset();
}

bool Informer::HasSynced() const {
  MutexLock lock(mu_);
  return synced_;
}

std::optional<crd::ElasticVM> Informer::Get(const std::string& key) const {
  PackedObject packed;
  {
    MutexLock lock(mu_);
    auto it = cache_.find(key);
    if (it == cache_.end()) return std::nullopt;
    packed = it->second;  // a copy of ~100 bytes; the decode runs without the lock
  }
  LastDecoded& last = ThreadLastDecoded();
  if (last.informer == id_ && !packed.resource_version().empty() && last.key == key &&
      last.resource_version == packed.resource_version()) {
    return last.object;
  }
  if (std::optional<crd::ElasticVM> handed = TakeHandoff(key, packed.resource_version())) {
    return handed;
  }
  std::optional<crd::ElasticVM> object = packed.Unpack();
  if (object) last = {id_, key, packed.resource_version(), *object};
  return object;
}

std::vector<std::string> Informer::Keys() const {
  MutexLock lock(mu_);
  std::vector<std::string> keys;
  keys.reserve(cache_.size() + moving_.size());
  for (const auto& [key, object] : cache_) keys.push_back(key);
  for (const auto& [key, object] : moving_) keys.push_back(key);
  return keys;
}

void Informer::Observed(const crd::ElasticVM& updated, const std::string& based_on_rv) {
  crd::ElasticVM copy = updated;
  PackedObject packed = PackForCache(copy);
  MutexLock lock(mu_);
  auto it = cache_.find(updated.Key());
  if (it != cache_.end() && it->second.resource_version() == based_on_rv) {
    it->second = std::move(packed);
  }
}

void Informer::Released(const std::string& key) {
  crd::ElasticVM object;
  {
    MutexLock lock(mu_);
    auto it = moving_.find(key);
    if (it == moving_.end() || cache_.count(key)) return;
    object = it->second;
  }
  if (!WriteRelease(object)) return;  // kept: the next resync or event tries again
  MutexLock lock(mu_);
  auto it = moving_.find(key);
  // Unless a newer version to release arrived meanwhile.
  if (it != moving_.end() &&
      it->second.metadata.resource_version == object.metadata.resource_version) {
    moving_.erase(it);
  }
}

bool Informer::WriteRelease(const crd::ElasticVM& object) {
  crd::ElasticVMStatus status = object.status;
  reconciler::SetCondition(
      status.conditions, "Ready", false, AssignmentReasonName(AssignmentReason::kNodeChanged),
      "the agent on node " + options_.node_name + " stopped reconciling it: spec.nodeName is now " +
          object.spec.node_name + ", whose agent takes over",
      object.metadata.generation, std::chrono::system_clock::now());
  if (HasBeenReleased(object)) return true;  // for this generation, already
  KubeStatusWriter writer(client_, nullptr);
  std::string error;
  if (!writer.WriteStatus(object, status, &error)) {
    log::Warn("release of an ElasticVM for another node failed; retried on the next resync",
              {{"object", object.Key()}, {"error", error}});
    return false;
  }
  log::Info("released an ElasticVM for another node",
            {{"object", object.Key()}, {"to", object.spec.node_name}});
  return true;
}

std::string Informer::LastResourceVersion() const {
  MutexLock lock(mu_);
  return last_rv_;
}

int Informer::ListCount() const {
  MutexLock lock(mu_);
  return list_count_;
}

std::string Informer::SelectorQuery() const {
  if (options_.node_name.empty()) return "";
  return "labelSelector=" + QueryEscape(NodeLabelSelector(options_.node_name));
}

void Informer::Backoff() {
  MutexLock lock(mu_);
  if (backoff_.count() == 0) {
    backoff_ = options_.backoff_initial;
  } else {
    backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  }
  // Full jitter on the upper half: many agents reconnecting after an API outage spread out.
  thread_local std::mt19937 random{std::random_device{}()};
  std::uniform_int_distribution<int64_t> spread(backoff_.count() / 2, backoff_.count());
  std::chrono::milliseconds wait(spread(random));
  lock.WaitFor(stop_cv_, wait, [&]() REQUIRES(mu_) { return stopping_; });
}

void Informer::Run() {
  pthread_setname_np(pthread_self(), "informer");
  while (!Stopping()) {
    std::string resource_version;
    if (!List(&resource_version)) {
      Backoff();
      continue;
    }
    bool relist = false;
    while (!relist && !Stopping()) {
      WatchOutcome outcome = WatchOnce(resource_version);
      switch (outcome) {
        case WatchOutcome::kStop:
          return;
        case WatchOutcome::kRelist:
          relist = true;
          break;
        case WatchOutcome::kReconnect:
          break;
      }
      MutexLock lock(mu_);
      resource_version = last_rv_;
    }
  }
}

std::string Informer::ListResourceVersion() const {
  // client-go's reflector: the first LIST asks for "0", which the API server answers from its
  // watch cache (one answer, no paging, no etcd read); a relist asks for the last version
  // seen; after the server refused a version, a quorum read ("") from etcd.
  if (list_rv_unavailable_) return "";
  MutexLock lock(mu_);
  return last_rv_.empty() ? "0" : last_rv_;
}

bool Informer::ReadListPage(std::istream& body, ListPage* page, CacheMap* listed, MovingMap* moving,
                            size_t* items) {
  // Each item is decoded as soon as the parser has it and then dropped from the document,
  // and the body is parsed as it arrives, so a LIST answered whole from the watch cache (tens
  // of MB) is never held, as text or as one DOM.
  // What the cache drops (PackServed) is not even built (ServedFieldFilter): an item's
  // managedFields and the labels and annotations not ours (the last-applied one repeats the
  // object) are skipped as they are read, most of an object as `kubectl apply` leaves it.
  bool in_items = false;
  ServedFieldFilter filter;
  json::parser_callback_t on_element = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && in_items && depth > 2) {
      // An item's own fields are at depth 3.
      return filter.Keep(depth - 2, parsed.get_ref<const std::string&>());
    }
    if (depth == 1 && event == json::parse_event_t::key) {
      in_items = parsed == "items";
    } else if (depth == 2 && in_items && event == json::parse_event_t::object_end) {
      crd::DecodeResult decoded = crd::DecodeJson(parsed);
      if (!decoded.ok()) {
        log::Warn("skipping an ElasticVM that cannot be decoded", {{"error", decoded.error}});
      } else {
        std::string key = decoded.object->Key();
        if (log::Enabled(log::Level::kDebug)) {
          log::Debug("listed object", {{"object", key}, {"node", LabelledNode(*decoded.object)}});
        }
        switch (ScopeFor(*decoded.object, options_.node_name)) {
          case NodeScope::kMine: {
            // Packed from the item as served: no second encoding of the object.
            PackedObject packed = PackedObject::PackServed(parsed);
            if (publish_while_listing_) {
              Publish(std::move(key), std::move(packed), std::move(*decoded.object));
            } else {
              listed->insert_or_assign(std::move(key), std::move(packed));
            }
            break;
          }
          case NodeScope::kMovedAway:
            TrimForCache(*decoded.object);
            moving->insert_or_assign(std::move(key), std::move(*decoded.object));
            break;
          case NodeScope::kNotMine:
            break;
        }
      }
      (*items)++;
      return false;
    }
    return true;
  };
  try {
    json document = json::parse(body, on_element);
    const json& metadata = document.value("metadata", json::object());
    page->resource_version = metadata.value("resourceVersion", "");
    page->continue_token = metadata.value("continue", "");
    return true;
  } catch (const json::exception& e) {
    log::Warn("list of elasticvms: bad answer", {{"error", e.what()}});
    return false;
  }
}

bool Informer::RefusedVersion(const ApiResult& result) {
  // 410 (expired), 504 "Too large resource version" and any other 4xx but the ones about who
  // we are or how fast we ask: the server will not serve that version, so read from etcd.
  int status = result.http_status;
  return status == 410 || status == 504 ||
         (status >= 400 && status < 500 && status != 401 && status != 403 && status != 429);
}

bool Informer::List(std::string* resource_version) {
  auto start = std::chrono::steady_clock::now();
  CacheMap listed;
  MovingMap moving;
  {
    // The first LIST into an empty cache: nothing to compare it with, so each object is
    // cached and signalled as soon as it is read, and the workers reconcile the first ones
    // while the rest of a long answer (tens of MB at 10,000 objects) is still arriving.
    MutexLock lock(mu_);
    publish_while_listing_ = !synced_ && cache_.empty();
  }
  if (!ReadAllPages(&listed, &moving, resource_version)) return false;
  // A LIST answered whole from the watch cache is tens of MB of transient text and copies;
  // glibc keeps such freed blocks in the heap (its mmap threshold grows after large frees),
  // which would count against the cache for the life of the process: give them back.
  malloc_trim(0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ReplaceCache(std::move(listed), std::move(moving), publish_while_listing_, *resource_version,
               seconds);
  publish_while_listing_ = false;
  return true;
}

std::string Informer::ListPagePath(const std::string& asked_rv, const ListPage& page) const {
  std::string path = ElasticVMsPath(options_.ns);
  // As client-go's reflector: pages, except at a version other than "0" from a server that
  // did not page before. kube-apiserver reads a version with a limit from etcd at exactly
  // that revision, which after its restart or a compaction is the very version the watch
  // was just refused (410 again, forever); without a limit its watch cache answers with
  // something at least as new.
  bool paged =
      asked_rv.empty() || asked_rv == "0" || paginated_result_ || !page.continue_token.empty();
  std::vector<std::string> query;
  if (paged) query.push_back("limit=" + std::to_string(options_.list_page_size));
  // A continuation carries its version inside the token; the server refuses both.
  if (!page.continue_token.empty()) {
    query.push_back("continue=" + QueryEscape(page.continue_token));
  } else if (!asked_rv.empty()) {
    query.push_back("resourceVersion=" + QueryEscape(asked_rv));
  }
  if (std::string selector = SelectorQuery(); !selector.empty()) query.push_back(selector);
  for (size_t i = 0; i < query.size(); ++i) path += (i == 0 ? "?" : "&") + query[i];
  return path;
}

bool Informer::ReadAllPages(CacheMap* listed_out, MovingMap* moving_out, std::string* list_rv) {
  CacheMap& listed = *listed_out;
  MovingMap& moving = *moving_out;
  ListPage page;
  std::string asked_rv = ListResourceVersion();
  auto start_over = [&] {
    page = ListPage{};
    listed.clear();
    moving.clear();
    // What was published stays cached; the new list is compared with it at the end.
    publish_while_listing_ = false;
  };
  // (A loop with `continue` meaning "start the list over": a do/while would test the emptied
  // continue token and take an empty list for the whole truth.)
  for (;;) {
    std::shared_ptr<StreamCancel> cancel = BeginStream();
    if (!cancel) return false;
    bool continued = !page.continue_token.empty();
    size_t items = 0;
    size_t bytes = 0;
    ApiResult result = client_.GetStreamed(
        ListPagePath(asked_rv, page),
        [&](std::istream& body) { return ReadListPage(body, &page, &listed, &moving, &items); },
        &bytes, options_.list_timeout, cancel.get());
    EndStream();
    metrics_->Received("list", items, bytes);
    if (cancel->cancelled()) return false;
    if (!result.ok()) {
      if (result.gone() && continued) {
        // The continue token expired: start the list over.
        start_over();
        continue;
      }
      if (!asked_rv.empty() && RefusedVersion(result)) {
        log::Info("list at a resourceVersion refused; listing from etcd",
                  {{"resourceVersion", asked_rv}, {"error", result.error}});
        list_rv_unavailable_ = true;
        asked_rv.clear();
        start_over();
        continue;
      }
      log::Warn("list of elasticvms failed", {{"error", result.error}});
      return false;
    }
    if (page.continue_token.empty()) break;
    // A LIST at "0" that comes in pages: this server has no watch cache (reflector's
    // paginatedResult), so relists keep paging rather than read everything at once.
    if (!continued && asked_rv == "0") paginated_result_ = true;
  }
  list_rv_unavailable_ = false;
  *list_rv = page.resource_version;
  return true;
}

void Informer::ReplaceCache(CacheMap listed, MovingMap moving, bool published,
                            const std::string& list_rv, double seconds) {
  // Tell which keys changed (added, modified, deleted).
  std::vector<std::string> changed;
  size_t size;
  {
    MutexLock lock(mu_);
    if (!published) {
      for (const auto& [key, object] : cache_) {
        auto it = listed.find(key);
        if (it == listed.end() || it->second.resource_version() != object.resource_version()) {
          changed.push_back(key);
        }
      }
      for (const auto& [key, object] : listed) {
        if (!cache_.count(key)) changed.push_back(key);
      }
      cache_ = std::move(listed);
    }
    // What to release is what this list says; each goes through the controller, whose
    // Released() writes the release once no pass of it runs.
    for (const auto& [key, object] : moving) {
      if (!std::count(changed.begin(), changed.end(), key)) changed.push_back(key);
    }
    moving_ = std::move(moving);
    synced_ = true;
    last_rv_ = list_rv;
    list_count_++;
    size = cache_.size();
  }
  metrics_->Listed(size, seconds);
  metrics_->CacheSize(size);
  log::Info("listed elasticvms", {{"objects", std::to_string(size)}, {"resourceVersion", list_rv}});
  for (const auto& key : changed) on_change_(key);
}

Informer::WatchOutcome Informer::WatchOnce(const std::string& resource_version) {
  std::shared_ptr<StreamCancel> cancel = BeginStream();
  if (!cancel) return WatchOutcome::kStop;
  std::string path =
      ElasticVMsPath(options_.ns) +
      "?watch=1&allowWatchBookmarks=true&resourceVersion=" + QueryEscape(resource_version) +
      "&timeoutSeconds=" + std::to_string(options_.watch_timeout.count());
  if (std::string selector = SelectorQuery(); !selector.empty()) path += "&" + selector;
  WatchOutcome outcome = WatchOutcome::kReconnect;
  size_t events = 0;
  auto started = std::chrono::steady_clock::now();
  WatchEnd end = client_.Watch(
      path,
      [&](std::string_view line) {
        events++;
        return HandleLine(line, &outcome);
      },
      *cancel, options_.watch_timeout + std::chrono::seconds(30));
  EndStream();
  if (Stopping() || end.kind == WatchEnd::Kind::kCancelled) return WatchOutcome::kStop;
  // A watch that delivered something, or lived a while, was healthy: failures after it
  // start backing off from the beginning. One that failed at once backs off more each time.
  size_t good_events = events - (outcome == WatchOutcome::kRelist ? 1 : 0);
  // (A quiet watch that ran to its own timeout was healthy too, however short it is.)
  auto long_enough = std::min<std::chrono::steady_clock::duration>(std::chrono::seconds(10),
                                                                   options_.watch_timeout);
  bool healthy = good_events > 0 || std::chrono::steady_clock::now() - started >= long_enough;
  if (healthy) {
    MutexLock lock(mu_);
    backoff_ = std::chrono::milliseconds(0);
  }
  return AfterWatch(end, outcome, healthy);
}

Informer::WatchOutcome Informer::AfterWatch(const WatchEnd& end, WatchOutcome outcome,
                                            bool healthy) {
  switch (end.kind) {
    case WatchEnd::Kind::kClosed:
      if (outcome == WatchOutcome::kRelist) {
        metrics_->WatchRestarted("gone");
        if (!healthy) Backoff();
        return WatchOutcome::kRelist;
      }
      metrics_->WatchRestarted("closed");
      log::Debug("watch closed; reconnecting", {{"resourceVersion", LastResourceVersion()}});
      if (!healthy) Backoff();
      return WatchOutcome::kReconnect;
    case WatchEnd::Kind::kBroken:
      metrics_->WatchRestarted("broken");
      log::Warn("watch broke; reconnecting",
                {{"error", end.result.error}, {"resourceVersion", LastResourceVersion()}});
      if (!healthy) Backoff();
      return WatchOutcome::kReconnect;
    case WatchEnd::Kind::kHttpError:
      if (end.result.gone()) {
        metrics_->WatchRestarted("gone");
        log::Info("watch resourceVersion too old; listing again", {{"error", end.result.error}});
        Backoff();
        return WatchOutcome::kRelist;
      }
      metrics_->WatchRestarted("http_error");
      log::Warn("watch failed", {{"error", end.result.error}});
      Backoff();
      return WatchOutcome::kReconnect;
    case WatchEnd::Kind::kCancelled:
      break;
  }
  return WatchOutcome::kStop;
}

bool Informer::HandleLine(std::string_view line, WatchOutcome* outcome) {
  ParsedWatchLine parsed = ParseWatchLine(line);
  if (!parsed.event) {
    log::Warn("watch: a line that is not a watch event; listing again", {{"error", parsed.error}});
    *outcome = WatchOutcome::kRelist;
    return false;
  }
  WatchEvent& event = *parsed.event;
  metrics_->WatchEvent(WatchEventTypeName(event.type));
  metrics_->Received("watch", event.object ? 1 : 0, line.size());
  if (event.type == WatchEvent::Type::kError) {
    if (event.code == 410 || event.reason == "Expired" || event.reason == "Gone") {
      log::Info("watch: resourceVersion too old; listing again", {{"message", event.message}});
    } else {
      log::Warn("watch: ERROR event; listing again",
                {{"reason", event.reason}, {"message", event.message}});
    }
    *outcome = WatchOutcome::kRelist;
    return false;
  }
  if (event.type == WatchEvent::Type::kUnknown) {
    log::Warn("watch: skipping an event of an unknown type");
  } else if (event.type != WatchEvent::Type::kBookmark && !event.object) {
    log::Warn("watch: skipping an ElasticVM that cannot be decoded",
              {{"error", event.decode_error}});
  } else if (event.object) {
    crd::ElasticVM& object = *event.object;
    if (log::Enabled(log::Level::kDebug)) {
      log::Debug("watch event", {{"type", WatchEventTypeName(event.type)},
                                 {"object", object.Key()},
                                 {"node", LabelledNode(object)},
                                 {"resourceVersion", event.resource_version},
                                 {"generation", std::to_string(object.metadata.generation)}});
    }
    NodeScope scope = event.type == WatchEvent::Type::kDeleted
                          ? NodeScope::kNotMine  // deleted, or no longer selected
                          : ScopeFor(object, options_.node_name);
    switch (scope) {
      case NodeScope::kMine:
        Upsert(std::move(object));
        break;
      case NodeScope::kMovedAway: {
        std::string key = object.Key();
        TrimForCache(object);
        Remove(key, std::move(object));
        break;
      }
      case NodeScope::kNotMine:
        Remove(object.Key());
        break;
    }
  }
  if (!event.resource_version.empty()) {
    MutexLock lock(mu_);
    last_rv_ = event.resource_version;
  }
  return true;
}

void Informer::Upsert(crd::ElasticVM object) {
  std::string key = object.Key();
  PackedObject packed = PackForCache(object);  // `object` is now as Get gives it back
  std::string resource_version = packed.resource_version();
  size_t size;
  {
    MutexLock lock(mu_);
    moving_.erase(key);
    auto it = cache_.find(key);
    if (it != cache_.end() && !packed.resource_version().empty() &&
        it->second.resource_version() == packed.resource_version()) {
      // The echo of our own status write, already taken in by Observed(): the same version
      // is the same object, so there is nothing new to reconcile (a pass would only observe
      // the domain again; tests/bench/apply_latency_bench saw it double the passes).
      return;
    }
    cache_[key] = std::move(packed);
    size = cache_.size();
  }
  Remember(key, resource_version, std::move(object));
  metrics_->CacheSize(size);
  on_change_(key);
}

void Informer::Publish(std::string key, PackedObject packed, crd::ElasticVM object) {
  TrimForCache(object);
  object.metadata.creation_timestamp.clear();  // as Unpack gives it back
  std::string resource_version = packed.resource_version();
  {
    MutexLock lock(mu_);
    cache_.insert_or_assign(key, std::move(packed));
  }
  Remember(key, std::move(resource_version), std::move(object));
  on_change_(key);
}

void Informer::Remember(const std::string& key, std::string resource_version,
                        crd::ElasticVM object) const {
  if (resource_version.empty()) return;
  {
    MutexLock lock(mu_);
    if (handoff_.size() < kHandoffLimit || handoff_.count(key)) {
      handoff_.insert_or_assign(key, std::pair(resource_version, object));
    }
  }
  ThreadLastDecoded() = {id_, key, std::move(resource_version), std::move(object)};
}

std::optional<crd::ElasticVM> Informer::TakeHandoff(const std::string& key,
                                                    const std::string& resource_version) const {
  MutexLock lock(mu_);
  auto it = handoff_.find(key);
  if (it == handoff_.end()) return std::nullopt;
  std::optional<crd::ElasticVM> object;
  if (it->second.first == resource_version) object = std::move(it->second.second);
  handoff_.erase(it);  // taken, or an older version than the cache's
  return object;
}

void Informer::Remove(const std::string& key, std::optional<crd::ElasticVM> moving) {
  size_t size;
  {
    MutexLock lock(mu_);
    moving_.erase(key);
    handoff_.erase(key);
    bool was_cached = cache_.erase(key) > 0;
    if (moving) {
      moving_.insert_or_assign(key, std::move(*moving));
    } else if (!was_cached) {
      return;
    }
    size = cache_.size();
  }
  metrics_->CacheSize(size);
  on_change_(key);
}

}  // namespace hotplug::controller::kube

#include "controller/kube/agent_lease.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>

#include "controller/kube/leader_election.h"
#include "controller/kube/node_scope.h"
#include "controller/log.h"

namespace hotplug::controller::kube {
namespace {

using json = nlohmann::json;
using std::chrono::system_clock;

// The annotation that names an agent Lease's node (a Lease name may be shortened).
constexpr const char* kNodeAnnotation = "hotplug.dev/node";

// "2026-01-01T00:00:00[.ffffff]Z" -> time; nullopt when it is not that.
std::optional<system_clock::time_point> ParseTime(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t seconds = timegm(&tm);
  if (seconds == -1) return std::nullopt;
  return system_clock::from_time_t(seconds);
}

}  // namespace

// --- PeriodicThread

PeriodicThread::~PeriodicThread() { Stop(); }

void PeriodicThread::Start(const char* name, std::chrono::milliseconds period,
                           std::function<bool()> step) {
  thread_ = std::thread([this, name, period, step = std::move(step)] {
    pthread_setname_np(pthread_self(), name);
    for (;;) {
      auto wait =
          step() ? period : std::min<std::chrono::milliseconds>(period, std::chrono::seconds(1));
      MutexLock lock(mu_);
      if (lock.WaitFor(cv_, wait, [&]() REQUIRES(mu_) { return stopping_; })) return;
    }
  });
}

void PeriodicThread::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

// --- AgentLease

AgentLease::AgentLease(Client& client, Options options)
    : client_(client), options_(std::move(options)) {}

AgentLease::~AgentLease() { Stop(); }

void AgentLease::Start() {
  log::Info("agent lease: renewing",
            {{"lease", options_.ns + "/" + AgentLeaseName(options_.node)},
             {"every", std::to_string(options_.renew_period.count()) + "ms"}});
  thread_.Start("agent-lease", options_.renew_period, [this] {
    if (!Renew()) return false;
    MutexLock lock(mu_);
    renewals_++;
    return true;
  });
}

void AgentLease::Stop() { thread_.Stop(); }

int AgentLease::renewals() const {
  MutexLock lock(mu_);
  return renewals_;
}

bool AgentLease::Renew() {
  const std::string name = AgentLeaseName(options_.node);
  const std::string now = MicroTime(system_clock::now());
  json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata",
                 {{"name", name},
                  {"namespace", options_.ns},
                  {"annotations", {{kNodeAnnotation, options_.node}}}}},
                {"spec",
                 {{"holderIdentity", options_.identity},
                  {"leaseDurationSeconds", options_.duration.count()},
                  {"renewTime", now}}}};
  ApiResult result;
  if (!resource_version_.empty()) {
    lease["metadata"]["resourceVersion"] = resource_version_;
    result = client_.Put(LeasePath(options_.ns, name), lease.dump());
  }
  if (resource_version_.empty() || result.conflict() || result.not_found()) {
    // First renewal, or someone else wrote it (a previous process of ours, a restart of the
    // API server's storage): read it and write on top of its version, or create it.
    ApiResult got = client_.Get(LeasePath(options_.ns, name));
    if (got.not_found()) {
      lease["metadata"].erase("resourceVersion");
      lease["spec"]["acquireTime"] = now;
      result = client_.Post(LeasesPath(options_.ns), lease.dump());
    } else if (got.ok()) {
      try {
        json existing = json::parse(got.body);
        lease["metadata"]["resourceVersion"] = existing["metadata"].value("resourceVersion", "");
        lease["spec"]["acquireTime"] = existing["spec"].value("acquireTime", now);
      } catch (const json::exception& e) {
        got.error = std::string("bad lease: ") + e.what();
      }
      result = client_.Put(LeasePath(options_.ns, name), lease.dump());
    } else {
      result = got;
    }
  }
  if (!result.ok()) {
    resource_version_.clear();
    if (!warned_) {
      log::Warn(
          "agent lease: renewal failed; the central assigner reports this node's "
          "ElasticVMs as having no agent once the Lease runs out",
          {{"lease", options_.ns + "/" + name}, {"error", result.error}});
      warned_ = true;
    }
    return false;
  }
  try {
    resource_version_ = json::parse(result.body)["metadata"].value("resourceVersion", "");
  } catch (const json::exception&) {
    resource_version_.clear();
  }
  if (warned_) log::Info("agent lease: renewed again", {{"lease", options_.ns + "/" + name}});
  warned_ = false;
  return true;
}

// --- AgentPresence

AgentPresence::AgentPresence(Client& client, Options options)
    : client_(client), options_(std::move(options)) {}

AgentPresence::~AgentPresence() { Stop(); }

void AgentPresence::Start(ChangeHandler on_change) {
  on_change_ = std::move(on_change);
  thread_.Start("agent-presence", options_.poll_period, [this] { return Poll(); });
}

void AgentPresence::Stop() { thread_.Stop(); }

bool AgentPresence::Known() const {
  MutexLock lock(mu_);
  return known_;
}

bool AgentPresence::Alive(const std::string& node) const {
  MutexLock lock(mu_);
  return alive_.count(node) > 0;
}

std::optional<json> AgentPresence::ListLeases() {
  ApiResult listed = client_.Get(LeasesPath(options_.ns));
  json leases;
  std::string error = listed.error;
  if (listed.ok()) {
    try {
      leases = json::parse(listed.body);
    } catch (const json::exception& e) {
      error = std::string("bad lease list: ") + e.what();
    }
  }
  if (!error.empty() || !listed.ok()) {
    // Once per run of failures; until a poll succeeds the assigner reports no one.
    if (!failing_) {
      log::Warn("agent presence: cannot list the agents' Leases; retrying every second",
                {{"namespace", options_.ns}, {"error", error}});
    }
    failing_ = true;
    return std::nullopt;
  }
  if (failing_) log::Info("agent presence: listing the agents' Leases again");
  failing_ = false;
  return leases;
}

std::optional<std::string> AgentPresence::ReadLease(const json& lease, Clocks now,
                                                    Seen* entry) const {
  if (!lease.is_object()) return std::nullopt;
  const json metadata = lease.value("metadata", json::object());
  const json annotations = metadata.value("annotations", json::object());
  auto node_it = annotations.find(kNodeAnnotation);
  if (node_it == annotations.end() || !node_it->is_string()) return std::nullopt;  // not ours
  const std::string node = node_it->get<std::string>();
  if (metadata.value("name", "") != AgentLeaseName(node)) return std::nullopt;
  const json spec = lease.value("spec", json::object());
  const std::string renew_time = spec.value("renewTime", "");
  entry->holder = spec.value("holderIdentity", "");
  entry->record = entry->holder + "|" + renew_time;
  entry->duration = std::chrono::seconds(spec.value("leaseDurationSeconds", int64_t{0}));
  auto previous = seen_.find(node);
  if (previous != seen_.end() && previous->second.record == entry->record) {
    entry->changed_at = previous->second.changed_at;
  } else if (previous != seen_.end()) {
    entry->changed_at = now.local;  // renewed since the last poll
  } else {
    // First sight: trust the writer's clock once, for how long ago it renewed (bounded
    // by the duration); every later renewal is timed on ours.
    using steady = std::chrono::steady_clock;
    auto renewed = ParseTime(renew_time);
    auto age = renewed ? std::chrono::duration_cast<steady::duration>(now.wall - *renewed)
                       : steady::duration(entry->duration);
    age = std::clamp<steady::duration>(age, steady::duration::zero(), entry->duration);
    entry->changed_at = now.local - age;
  }
  return node;
}

std::set<std::string> AgentPresence::Publish(std::set<std::string> alive, bool* first) {
  std::set<std::string> changed;
  MutexLock lock(mu_);
  for (const auto& node : alive) {
    if (!alive_.count(node)) changed.insert(node);
  }
  for (const auto& node : alive_) {
    if (!alive.count(node)) changed.insert(node);
  }
  alive_ = std::move(alive);
  *first = !known_;
  known_ = true;
  return changed;
}

bool AgentPresence::Poll() {
  std::optional<json> leases = ListLeases();
  if (!leases) return false;
  const Clocks now{std::chrono::steady_clock::now(), system_clock::now()};
  std::map<std::string, Seen> seen;
  std::set<std::string> alive;
  for (const json& lease : leases->value("items", json::array())) {
    Seen entry;
    std::optional<std::string> node = ReadLease(lease, now, &entry);
    if (!node) continue;
    if (!entry.holder.empty() && now.local - entry.changed_at < entry.duration) {
      alive.insert(*node);
    }
    seen[*node] = entry;
  }
  seen_ = std::move(seen);
  bool first = false;
  const std::set<std::string> changed = Publish(std::move(alive), &first);
  for (const auto& node : changed) {
    log::Info(Alive(node) ? "agent presence: an agent came" : "agent presence: an agent went",
              {{"node", node}});
  }
  if (on_change_ && (first || !changed.empty())) on_change_(changed);
  return true;
}

}  // namespace hotplug::controller::kube

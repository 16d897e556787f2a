#include "controller/kube/leader_election.h"

#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "controller/log.h"

namespace hotplug::controller::kube {
namespace {

using json = nlohmann::json;

int64_t SecondsCeil(std::chrono::milliseconds d) { return (d.count() + 999) / 1000; }

}  // namespace

std::string MicroTime(std::chrono::system_clock::time_point when) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count() %
      1'000'000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(micros));
  return buf;
}

std::string LeaderElector::DefaultIdentity() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
  std::random_device random;
  char suffix[24];
  std::snprintf(suffix, sizeof(suffix), "_%08x%08x", random(), random());
  return std::string(host) + suffix;
}

LeaderElector::LeaderElector(Client& client, Options options)
    : client_(client), options_(std::move(options)) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Start(std::function<void()> on_started_leading,
                          std::function<void()> on_stopped_leading) {
  on_started_ = std::move(on_started_leading);
  on_stopped_ = std::move(on_stopped_leading);
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool LeaderElector::Wait(std::chrono::milliseconds period, bool jitter) {
  if (jitter) {
    thread_local std::mt19937 random{std::random_device{}()};
    std::uniform_real_distribution<double> extra(0.0, 0.2);
    period += std::chrono::milliseconds(static_cast<int64_t>(period.count() * extra(random)));
  }
  MutexLock lock(mu_);
  return !lock.WaitFor(cv_, period, [&]() REQUIRES(mu_) { return stopping_; });
}

void LeaderElector::Run() {
  pthread_setname_np(pthread_self(), "leader-elect");
  log::Info("leader election: trying to acquire the lease",
            {{"lease", options_.ns + "/" + options_.name}, {"identity", options_.identity}});
  // Acquire.
  while (true) {
    if (TryAcquireOrRenew()) break;
    if (!Wait(options_.retry_period, true)) return;
  }
  leading_ = true;
  log::Info("leader election: became leader",
            {{"lease", options_.ns + "/" + options_.name}, {"identity", options_.identity}});
  if (on_started_) on_started_();
  // Renew until a renewal fails for longer than the renew deadline, or until Stop.
  auto last_renew = std::chrono::steady_clock::now();
  while (Wait(options_.retry_period, false)) {
    if (TryAcquireOrRenew()) {
      last_renew = std::chrono::steady_clock::now();
      continue;
    }
    if (std::chrono::steady_clock::now() - last_renew >= options_.renew_deadline) {
      leading_ = false;
      log::Error("leader election: lost the lease",
                 {{"lease", options_.ns + "/" + options_.name}, {"identity", options_.identity}});
      if (on_stopped_) on_stopped_();
      return;
    }
  }
  // Stop: hand the lease over.
  Release();
  leading_ = false;
}

bool LeaderElector::CreateLease(const std::string& now) {
  json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", options_.name}, {"namespace", options_.ns}}},
                {"spec",
                 {{"holderIdentity", options_.identity},
                  {"leaseDurationSeconds", SecondsCeil(options_.lease_duration)},
                  {"acquireTime", now},
                  {"renewTime", now},
                  {"leaseTransitions", 0}}}};
  ApiResult created = client_.Post(LeasesPath(options_.ns), lease.dump());
  if (!created.ok()) {
    log::Debug("leader election: create failed", {{"error", created.error}});
    return false;
  }
  observed_record_ = options_.identity + "|" + now + "|0";
  observed_at_ = std::chrono::steady_clock::now();
  return true;
}

bool LeaderElector::TryAcquireOrRenew() {
  std::string path = LeasePath(options_.ns, options_.name);
  std::string now = MicroTime(std::chrono::system_clock::now());
  ApiResult got = client_.Get(path);
  if (got.not_found()) return CreateLease(now);
  if (!got.ok()) {
    log::Warn("leader election: cannot read the lease", {{"error", got.error}});
    return false;
  }
  json lease;
  try {
    lease = json::parse(got.body);
  } catch (const json::exception& e) {
    log::Warn("leader election: bad lease", {{"error", e.what()}});
    return false;
  }
  json spec = lease.value("spec", json::object());
  std::string holder = spec.value("holderIdentity", "");
  std::string renew_time = spec.value("renewTime", "");
  int64_t transitions = spec.value("leaseTransitions", 0);
  int64_t duration_seconds =
      spec.value("leaseDurationSeconds", SecondsCeil(options_.lease_duration));
  std::string record = holder + "|" + renew_time + "|" + std::to_string(transitions);
  auto local_now = std::chrono::steady_clock::now();
  if (record != observed_record_) {
    observed_record_ = record;
    observed_at_ = local_now;
  }
  if (!holder.empty() && holder != options_.identity &&
      observed_at_ + std::chrono::seconds(duration_seconds) > local_now) {
    return false;  // held by someone who renewed recently
  }
  json& new_spec = lease["spec"];
  if (holder != options_.identity) {
    new_spec["acquireTime"] = now;
    new_spec["leaseTransitions"] = holder.empty() && transitions == 0 ? 0 : transitions + 1;
    if (!holder.empty()) {
      log::Info("leader election: taking over an expired lease", {{"previous", holder}});
    }
  }
  new_spec["holderIdentity"] = options_.identity;
  new_spec["leaseDurationSeconds"] = SecondsCeil(options_.lease_duration);
  new_spec["renewTime"] = now;
  ApiResult updated = client_.Put(path, lease.dump());  // carries metadata.resourceVersion
  if (!updated.ok()) {
    log::Debug("leader election: update failed", {{"error", updated.error}});
    return false;
  }
  observed_record_ = options_.identity + "|" + now + "|" +
                     std::to_string(new_spec.value("leaseTransitions", int64_t{0}));
  observed_at_ = local_now;
  return true;
}

void LeaderElector::Release() {
  std::string path = LeasePath(options_.ns, options_.name);
  ApiResult got = client_.Get(path);
  if (!got.ok()) return;
  try {
    json lease = json::parse(got.body);
    if (lease["spec"].value("holderIdentity", "") != options_.identity) return;
    std::string now = MicroTime(std::chrono::system_clock::now());
    lease["spec"]["holderIdentity"] = "";
    lease["spec"]["leaseDurationSeconds"] = 1;
    lease["spec"]["renewTime"] = now;
    ApiResult released = client_.Put(path, lease.dump());
    if (released.ok()) {
      log::Info("leader election: released the lease", {{"identity", options_.identity}});
    }
  } catch (const json::exception&) {
  }
}

}  // namespace hotplug::controller::kube

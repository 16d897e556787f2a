#include "controller/domain_locks.h"

#include <algorithm>

namespace hotplug::controller {

bool DomainLocks::TryLock(const std::string& domain, const std::string& key) {
  MutexLock lock(mu_);
  auto [it, inserted] = held_.try_emplace(domain, Holder{key, {}});
  if (inserted) return true;
  std::vector<std::string>& waiting = it->second.waiting;
  if (std::find(waiting.begin(), waiting.end(), key) == waiting.end()) waiting.push_back(key);
  return false;
}

std::vector<std::string> DomainLocks::Unlock(const std::string& domain) {
  MutexLock lock(mu_);
  auto it = held_.find(domain);
  if (it == held_.end()) return {};
  std::vector<std::string> waiting = std::move(it->second.waiting);
  held_.erase(it);
  return waiting;
}

}  // namespace hotplug::controller

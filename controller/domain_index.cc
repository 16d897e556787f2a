#include "controller/domain_index.h"

#include <functional>

namespace hotplug::controller {

void DomainIndex::Set(const std::string& key, const std::optional<std::string>& domain) {
  std::optional<size_t> domain_hash;
  if (domain) domain_hash = std::hash<std::string>{}(*domain);
  MutexLock lock(mu_);
  auto it = domain_hash_of_key_.find(key);
  if (it != domain_hash_of_key_.end() && it->second != domain_hash) {
    auto range = keys_of_domain_hash_.equal_range(it->second);
    for (auto entry = range.first; entry != range.second; ++entry) {
      if (entry->second == &it->first) {
        keys_of_domain_hash_.erase(entry);
        break;
      }
    }
    domain_hash_of_key_.erase(it);
    it = domain_hash_of_key_.end();
  }
  if (domain_hash && it == domain_hash_of_key_.end()) {
    it = domain_hash_of_key_.emplace(key, *domain_hash).first;
    keys_of_domain_hash_.emplace(*domain_hash, &it->first);
  }
}

std::vector<std::string> DomainIndex::KeysNaming(const std::string& domain) const {
  std::vector<std::string> keys;
  MutexLock lock(mu_);
  auto range = keys_of_domain_hash_.equal_range(std::hash<std::string>{}(domain));
  for (auto it = range.first; it != range.second; ++it) keys.push_back(*it->second);
  return keys;
}

}  // namespace hotplug::controller

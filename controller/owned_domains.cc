#include "controller/owned_domains.h"

namespace hotplug::controller {

void OwnedDomains::Record(const std::string& key, const std::string& domain,
                          const std::optional<backends::DomainClaim>& claim, bool claim_known) {
  if (!claim_known) return;
  MutexLock lock(mu_);
  if (claim) {
    owned_.insert_or_assign(key, Compact{domain, claim->uid});
    return;
  }
  auto it = owned_.find(key);
  if (it != owned_.end() && it->second.domain == domain) owned_.erase(it);
}

std::optional<OwnedDomains::Owned> OwnedDomains::TakeIfNotNaming(
    const std::string& key, const std::optional<std::string>& domain) {
  MutexLock lock(mu_);
  auto it = owned_.find(key);
  if (it == owned_.end() || (domain && it->second.domain == *domain)) return std::nullopt;
  Owned owned{std::move(it->second.domain), {key, std::move(it->second.uid), manager_}};
  owned_.erase(it);
  return owned;
}

}  // namespace hotplug::controller

// The domains this process's objects own (their claims, backends::DomainClaim), by key: when
// an owner is deleted or points at another domain, its claim on the old domain is what gets
// released, and the objects waiting for that domain are queued. Thread-safe.
//
// One entry per object that holds a claim (every object, at steady state). The claim a pass
// reports is always its object's own (reconciler's OurClaim: the key as owner, this process's
// manager), so only its domain and uid are kept (about half the bytes of a whole claim).
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "backends/hypervisor.h"
#include "common/thread_annotations.h"

namespace hotplug::controller {

class OwnedDomains {
 public:
  struct Owned {
    std::string domain;
    backends::DomainClaim claim;
  };
  // `manager`: the claims' manager (reconciler::Options::claim_manager).
  explicit OwnedDomains(std::string manager) : manager_(std::move(manager)) {}

  // After a pass of `key` on `domain` that got to the claim (reconciler::Result::claim_known):
  // `claim` is what it holds now (nullopt: none). A pass that ended before changes nothing,
  // as the object may still hold what it held.
  void Record(const std::string& key, const std::string& domain,
              const std::optional<backends::DomainClaim>& claim, bool claim_known);
  // What `key` owns unless it still names that domain (nullopt: nothing to release); the
  // entry is dropped, as the caller releases it.
  std::optional<Owned> TakeIfNotNaming(const std::string& key,
                                       const std::optional<std::string>& domain);

 private:
  struct Compact {  // the claim {key, uid, manager_}
    std::string domain;
    std::string uid;
  };
  const std::string manager_;
  Mutex mu_;
  std::unordered_map<std::string, Compact> owned_ GUARDED_BY(mu_);  // by key
};

}  // namespace hotplug::controller

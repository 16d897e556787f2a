// Which work-queue keys name which libvirt domain, so that a hypervisor event about a domain
// requeues the objects that name it. Thread-safe: the source's thread updates it, the
// backend's event thread reads it.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"

namespace hotplug::controller {

class DomainIndex {
 public:
  // `key` now names `domain`; nullopt: the object is gone.
  void Set(const std::string& key, const std::optional<std::string>& domain);
  // The keys that name `domain` (a hash collision can add one that does not: a spurious pass).
  std::vector<std::string> KeysNaming(const std::string& domain) const;

 private:
  mutable Mutex mu_;
  // Domains are held as 64-bit hashes of their names and keys once (the
  // second map points into the first's nodes, which never move): about 150 bytes per object
  // instead of two copies of every name.
  std::unordered_map<std::string, size_t> domain_hash_of_key_ GUARDED_BY(mu_);
  std::unordered_multimap<size_t, const std::string*> keys_of_domain_hash_ GUARDED_BY(mu_);
};

}  // namespace hotplug::controller

// Never two passes on one domain at once, whichever objects name it: a pass takes its
// domain's lock first; a key that finds the lock taken is remembered and queued again when
// the holder is done. Thread-safe.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"

namespace hotplug::controller {

class DomainLocks {
 public:
  // True when `key` now holds `domain`. Otherwise `key` waits: Unlock will return it.
  bool TryLock(const std::string& domain, const std::string& key);
  // `domain`'s holder is done; returns the keys that found it taken meanwhile.
  std::vector<std::string> Unlock(const std::string& domain);

 private:
  struct Holder {
    std::string key;
    std::vector<std::string> waiting;
  };
  Mutex mu_;
  std::unordered_map<std::string, Holder> held_ GUARDED_BY(mu_);  // by domain
};

}  // namespace hotplug::controller

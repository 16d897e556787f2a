#include "controller/status_sync.h"

#include "controller/log.h"

namespace hotplug::controller {

StatusSync::Writes StatusSync::Begin(const std::string& key, const crd::ElasticVM& object) {
  Writes writes(*this, key, object);
  MutexLock lock(mu_);
  auto it = unwritten_.find(key);
  // The copy is made only then: a pass is a few microseconds and a copy of the object is not.
  if (it != unwritten_.end() && it->second.first == object.metadata.uid) {
    writes.with_unwritten_ = object;
    writes.with_unwritten_->status = it->second.second;
  }
  return writes;
}

void StatusSync::Forget(const std::string& key) {
  MutexLock lock(mu_);
  unwritten_.erase(key);
}

bool StatusSync::Write(const std::string& key, const crd::ElasticVM& object,
                       const crd::ElasticVMStatus& status) {
  std::string error;
  if (writer_.WriteStatus(object, status, &error)) {
    writes_++;
    metrics_.StatusWrite("success");
    return true;
  }
  failures_++;
  metrics_.StatusWrite("failure");
  log::Warn("status write failed", {{"object", key}, {"error", error}});
  return false;
}

void StatusSync::Writes::Progress(const crd::ElasticVMStatus& status) {
  if (status == object_.status) return;
  if (sync_.Write(key_, object_, status)) {
    written_ = status;
  } else {
    failed_ = true;
  }
}

bool StatusSync::Writes::Finish(const crd::ElasticVMStatus& status) {
  // Write when the status differs from what the object (or this pass) last said. The source
  // may already hold the version the progress write produced.
  const crd::ElasticVMStatus& previous = written_ ? *written_ : object_.status;
  bool final_write_failed = false;
  if (status != previous) {
    crd::ElasticVM base = object_;
    if (written_) {
      std::optional<crd::ElasticVM> latest = sync_.source_.Get(key_);
      if (latest && latest->metadata.uid == object_.metadata.uid) base = std::move(*latest);
    }
    if (!sync_.Write(key_, base, status)) failed_ = final_write_failed = true;
  }
  MutexLock lock(sync_.mu_);
  if (final_write_failed) {
    sync_.unwritten_[key_] = {object_.metadata.uid, status};
  } else if (!sync_.unwritten_.empty()) {
    sync_.unwritten_.erase(key_);
  }
  return !failed_;
}

}  // namespace hotplug::controller

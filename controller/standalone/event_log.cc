#include "controller/standalone/event_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "controller/log.h"

namespace hotplug::controller::standalone {

LogEventRecorder::LogEventRecorder(const StatusDir* status_dir, const reconciler::Clock& clock,
                                   size_t rotate_bytes)
    : status_dir_(status_dir), clock_(clock), rotate_bytes_(rotate_bytes) {}

bool LogEventRecorder::EnsureOpenLocked() {
  if (file_.valid() && status_dir_->generation() == generation_) return true;
  std::string error;
  file_.Reset(status_dir_->OpenEventsLog(&generation_, &error));
  if (!file_.valid()) {
    if (!open_failed_) {
      log::Warn("standalone: cannot append to the events file; events go to the log only",
                {{"dir", status_dir_->path()}, {"error", error}});
    }
    open_failed_ = true;
    return false;
  }
  open_failed_ = false;
  return true;
}

void LogEventRecorder::Record(const crd::ElasticVM& object, const reconciler::Event& event) {
  const bool warning = event.type == reconciler::Event::Type::kWarning;
  const std::string key = object.Key();
  log::Write(warning ? log::Level::kWarn : log::Level::kInfo, "event",
             {{"object", key},
              {"type", warning ? "Warning" : "Normal"},
              {"reason", event.reason},
              {"message", event.message}});
  if (status_dir_ == nullptr) return;

  nlohmann::json line = {{"time", reconciler::FormatRfc3339(clock_.Now())},
                         {"object", key},
                         {"type", warning ? "Warning" : "Normal"},
                         {"reason", event.reason},
                         {"message", event.message}};
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  MutexLock lock(mu_);
  if (!EnsureOpenLocked()) return;
  struct stat info {};
  if (fstat(file_.get(), &info) == 0 && static_cast<size_t>(info.st_size) >= rotate_bytes_) {
    file_.Reset();
    status_dir_->RotateEventsLog();
    if (!EnsureOpenLocked()) return;
  }
  // One write of a whole line with O_APPEND: lines never interleave. A short write (a full
  // disk) loses the rest of this line only.
  if (write(file_.get(), text.data(), text.size()) < 0 && !open_failed_) {
    log::Warn("standalone: cannot append to the events file",
              {{"dir", status_dir_->path()}, {"error", std::strerror(errno)}});
  }
}

}  // namespace hotplug::controller::standalone

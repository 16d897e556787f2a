#include "controller/standalone/event_log.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "controller/log.h"

namespace hotplug::controller::standalone {

LogEventRecorder::LogEventRecorder(std::string events_file, const reconciler::Clock& clock,
                                   size_t rotate_bytes)
    : events_file_(std::move(events_file)), clock_(clock), rotate_bytes_(rotate_bytes) {}

LogEventRecorder::~LogEventRecorder() {
  if (file_) std::fclose(file_);
}

void LogEventRecorder::Record(const crd::ElasticVM& object, const reconciler::Event& event) {
  const bool warning = event.type == reconciler::Event::Type::kWarning;
  const std::string key = object.Key();
  log::Write(warning ? log::Level::kWarn : log::Level::kInfo, "event",
             {{"object", key},
              {"type", warning ? "Warning" : "Normal"},
              {"reason", event.reason},
              {"message", event.message}});
  if (events_file_.empty()) return;

  nlohmann::json line = {{"time", reconciler::FormatRfc3339(clock_.Now())},
                         {"object", key},
                         {"type", warning ? "Warning" : "Normal"},
                         {"reason", event.reason},
                         {"message", event.message}};
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mu_);
  if (file_ && std::ftell(file_) >= static_cast<long>(rotate_bytes_)) {
    std::fclose(file_);
    file_ = nullptr;
    std::rename(events_file_.c_str(), (events_file_ + ".1").c_str());
  }
  if (!file_) {
    file_ = std::fopen(events_file_.c_str(), "a");
    if (!file_) {
      if (!open_failed_) {
        log::Warn("standalone: cannot append to the events file; events go to the log only",
                  {{"file", events_file_}, {"error", std::strerror(errno)}});
      }
      open_failed_ = true;
      return;
    }
    open_failed_ = false;
  }
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);
}

}  // namespace hotplug::controller::standalone

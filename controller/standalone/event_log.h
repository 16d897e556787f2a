// The EventRecorder of standalone mode: each Event becomes a JSON log line (type, reason,
// message, object) and, when a file is given, a JSON line appended to it
// (DIR/.status/events.log; rotated to events.log.1 past a size limit).
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "controller/source.h"
#include "reconciler/clock.h"

namespace hotplug::controller::standalone {

class LogEventRecorder final : public EventRecorder {
 public:
  // `events_file` empty: log lines only. `clock` must outlive the recorder.
  LogEventRecorder(std::string events_file, const reconciler::Clock& clock,
                   size_t rotate_bytes = 4 << 20);
  ~LogEventRecorder() override;
  LogEventRecorder(const LogEventRecorder&) = delete;
  LogEventRecorder& operator=(const LogEventRecorder&) = delete;

  void Record(const crd::ElasticVM& object, const reconciler::Event& event) override;

 private:
  const std::string events_file_;
  const reconciler::Clock& clock_;
  const size_t rotate_bytes_;
  std::mutex mu_;
  std::FILE* file_ = nullptr;  // guarded by mu_; opened on first use
  bool open_failed_ = false;   // guarded by mu_: log the failure once
};

}  // namespace hotplug::controller::standalone

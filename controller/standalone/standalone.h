// Standalone mode (`hotplug-operator --standalone DIR`): no Kubernetes. The ElasticVMs come
// from the YAML files in DIR (folder_source.h), their status goes to DIR/.status
// (file_status_writer.h, status_dir.h), and Events become log lines and DIR/.status/events.log
// (event_log.h). The main program hands the three interfaces to the Controller.
#pragma once

#include <memory>
#include <string>

#include "controller/source.h"
#include "controller/standalone/event_log.h"
#include "controller/standalone/file_status_writer.h"
#include "controller/standalone/folder_source.h"
#include "controller/standalone/status_dir.h"
#include "reconciler/clock.h"

namespace hotplug::controller::standalone {

class StandaloneMode {
 public:
  struct Options {
    FolderSource::Options source;
    bool events_file = true;                   // also append Events to DIR/.status/events.log
    const reconciler::Clock* clock = nullptr;  // nullptr: the system clock
  };

  ObjectSource& source() { return *source_; }
  StatusWriter& status_writer() { return *status_writer_; }
  EventRecorder& events() { return *events_; }
  FolderSource& folder_source() { return *source_; }
  const StatusDir& status_dir() const { return *status_dir_; }

 private:
  friend std::unique_ptr<StandaloneMode> MakeStandalone(const std::string&, Options, std::string*);
  StandaloneMode() = default;
  reconciler::SystemClock system_clock_;
  // Destroyed in reverse order: the source (and its thread) before the folder it writes to.
  std::unique_ptr<StatusDir> status_dir_;
  std::unique_ptr<FolderSource> source_;
  std::unique_ptr<FileStatusWriter> status_writer_;
  std::unique_ptr<LogEventRecorder> events_;
};

// Opens and locks DIR (a second process on it is refused), creates DIR/.status, opens the
// folder watch and reads the status files of an earlier run. nullptr with `error` when DIR
// cannot be used.
std::unique_ptr<StandaloneMode> MakeStandalone(const std::string& dir,
                                               StandaloneMode::Options options, std::string* error);
inline std::unique_ptr<StandaloneMode> MakeStandalone(const std::string& dir, std::string* error) {
  return MakeStandalone(dir, StandaloneMode::Options{}, error);
}

}  // namespace hotplug::controller::standalone

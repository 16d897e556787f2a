// The EventRecorder of standalone mode: each Event becomes a JSON log line (type, reason,
// message, object) and, when a status folder is given, a JSON line appended to
// DIR/.status/events.log (rotated to events.log.1 past a size limit; opened again when the
// folder was made again; never a symlink, a FIFO or anything but a regular file).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "common/thread_annotations.h"
#include "controller/source.h"
#include "controller/standalone/safe_files.h"
#include "controller/standalone/status_dir.h"
#include "reconciler/clock.h"

namespace hotplug::controller::standalone {

class LogEventRecorder final : public EventRecorder {
 public:
  // `status_dir` nullptr: log lines only. Both must outlive the recorder.
  LogEventRecorder(const StatusDir* status_dir, const reconciler::Clock& clock,
                   size_t rotate_bytes = 4 << 20);
  LogEventRecorder(const LogEventRecorder&) = delete;
  LogEventRecorder& operator=(const LogEventRecorder&) = delete;

  void Record(const crd::ElasticVM& object, const reconciler::Event& event) override;

 private:
  // Opens events.log when it is not open or the folder changed; false when it cannot be.
  bool EnsureOpenLocked() REQUIRES(mu_);

  const StatusDir* const status_dir_;
  const reconciler::Clock& clock_;
  const size_t rotate_bytes_;
  Mutex mu_;
  UniqueFd file_ GUARDED_BY(mu_);             // opened on first use
  uint64_t generation_ GUARDED_BY(mu_) = 0;   // the folder's generation file_ is in
  bool open_failed_ GUARDED_BY(mu_) = false;  // log the failure once
};

}  // namespace hotplug::controller::standalone

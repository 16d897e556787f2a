// The StatusWriter of standalone mode: each object's status goes to
// DIR/.status/<namespace>_<name>.yaml (the object with its status, replaced atomically) and
// into the FolderSource's cache, so the next pass starts from it and a restart reads it back.
#pragma once

#include <string>

#include "controller/source.h"
#include "controller/standalone/folder_source.h"
#include "controller/standalone/status_dir.h"

namespace hotplug::controller::standalone {

class FileStatusWriter final : public StatusWriter {
 public:
  // Both must outlive the writer.
  FileStatusWriter(FolderSource& source, const StatusDir& status_dir)
      : source_(source), status_dir_(status_dir) {}

  // Writes nothing (and returns true) for an object that was removed meanwhile.
  bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                   std::string* error) override;

 private:
  FolderSource& source_;
  const StatusDir& status_dir_;
};

}  // namespace hotplug::controller::standalone

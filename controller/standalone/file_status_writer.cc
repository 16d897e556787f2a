#include "controller/standalone/file_status_writer.h"

namespace hotplug::controller::standalone {

bool FileStatusWriter::WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                                   std::string* error) {
  return source_.CommitStatus(
      object.Key(), object.metadata.uid, status,
      [this](const crd::ElasticVM& record, std::string* write_error) {
        return status_dir_.WriteObject(record, write_error);
      },
      error);
}

}  // namespace hotplug::controller::standalone

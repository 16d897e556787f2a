#include "controller/standalone/standalone.h"

#include <sys/stat.h>

namespace hotplug::controller::standalone {

std::unique_ptr<StandaloneMode> MakeStandalone(const std::string& dir,
                                               StandaloneMode::Options options,
                                               std::string* error) {
  if (dir.empty()) {
    *error = "--standalone needs a folder";
    return nullptr;
  }
  std::string folder = dir;
  while (folder.size() > 1 && folder.back() == '/') folder.pop_back();
  struct stat info {};
  if (stat(folder.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    *error =
        "--standalone " + dir + ": not a folder (create it and put ElasticVM YAML files in it)";
    return nullptr;
  }
  std::unique_ptr<StandaloneMode> mode(new StandaloneMode());
  const reconciler::Clock& clock = options.clock ? *options.clock : mode->system_clock_;
  mode->status_dir_ = std::make_unique<StatusDir>(folder);
  if (!mode->status_dir_->Open(error)) {
    *error = "--standalone " + dir + ": " + *error;
    return nullptr;
  }
  mode->source_ = std::make_unique<FolderSource>(folder, *mode->status_dir_, clock, options.source);
  if (!mode->source_->Init(error)) {
    *error = "--standalone " + dir + ": " + *error;
    return nullptr;
  }
  mode->status_writer_ = std::make_unique<FileStatusWriter>(*mode->source_, *mode->status_dir_);
  mode->events_ = std::make_unique<LogEventRecorder>(
      options.events_file ? mode->status_dir_.get() : nullptr, clock);
  return mode;
}

}  // namespace hotplug::controller::standalone

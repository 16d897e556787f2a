// The DIR/.status folder of standalone mode: one file per object (<namespace>_<name>.yaml, the
// object as last reconciled with its status), one per bad input file (_file_<file>.yaml) and
// events.log. Every file is replaced atomically (temp file, fsync, rename), so a reader or a
// crash never sees half a status, and everything here is read back at start.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "crd/elasticvm.h"

namespace hotplug::controller::standalone {

// Annotations the status files carry besides the user's own.
inline constexpr const char* kSourceFileAnnotation = "hotplug.dev/source-file";
// Set when the object's YAML document is gone: the object is no longer reconciled and its
// VM was left as it was. Dropped when the object comes back.
inline constexpr const char* kRemovedAnnotation = "hotplug.dev/removed";
// The spec error the status was computed for (InvalidSpec), so a restart can tell whether
// the spec changed.
inline constexpr const char* kSpecErrorAnnotation = "hotplug.dev/spec-error";

// Writes `content` to `path` so that `path` holds either the old or the new content, never a
// mix: a temp file in the same folder, fsync, rename, fsync of the folder.
bool WriteFileAtomically(const std::string& path, std::string_view content, std::string* error);

// True for a Kubernetes object name (DNS-1123 subdomain) / namespace (DNS-1123 label). Only
// such names become file names, so none can escape the folder.
bool IsValidName(std::string_view name);
bool IsValidNamespace(std::string_view ns);

class StatusDir {
 public:
  // `input_dir` is the folder of YAML files; the status folder is `input_dir`/.status.
  explicit StatusDir(const std::string& input_dir);

  // Creates the folder if needed and removes temp files a crash left behind.
  bool Create(std::string* error);

  const std::string& path() const { return path_; }
  std::string ObjectPath(const std::string& ns, const std::string& name) const;
  std::string FileErrorPath(const std::string& input_file) const;
  std::string EventsLogPath() const { return path_ + "/events.log"; }

  // Writes the object (metadata, spec and status) to its file.
  bool WriteObject(const crd::ElasticVM& object, std::string* error) const;

  // Reads every object file back, keyed "namespace/name"; unreadable files are logged and
  // skipped (the object then starts afresh).
  std::map<std::string, crd::ElasticVM> LoadObjects() const;

  // The problems of one input file that no object can carry (bad YAML, a document without a
  // name, a duplicate). Written when there are some, removed when there are none.
  bool WriteFileErrors(const std::string& input_file, const std::vector<std::string>& errors,
                       const std::string& time, std::string* error) const;
  bool RemoveFileErrors(const std::string& input_file, std::string* error) const;
  // Input files that have an error file now.
  std::vector<std::string> FilesWithErrors() const;

 private:
  // WriteFileAtomically, recreating the folder if it was removed meanwhile.
  bool Write(const std::string& path, std::string_view text, std::string* error) const;
  std::string path_;
};

}  // namespace hotplug::controller::standalone

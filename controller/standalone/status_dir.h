// The DIR/.status folder of standalone mode: one file per object (<namespace>_<name>.yaml, the
// object as last reconciled with its status; long names hashed to fit), one per bad input
// file (_file_<file>.yaml) and events.log. It owns DIR for the process: it holds DIR open and
// locked (flock) so a second process on the same folder is refused, and does all its I/O
// relative to held folder descriptors, never following a symlink (safe_files.h). .status is
// private (0700, files 0600) and made again when it disappears. Every file is replaced
// atomically, so a reader or a crash never sees half a status; each object file is checked
// to read back as written before it replaces the old one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/thread_annotations.h"
#include "controller/standalone/safe_files.h"
#include "crd/elasticvm.h"

namespace hotplug::controller::standalone {

// Annotations the status files carry besides the user's own. A user may not set them: the
// folder source drops them from the input (and says so), so each means what the operator
// meant.
inline constexpr const char* kSourceFileAnnotation = "hotplug.dev/source-file";
// Set when the object's YAML document is gone: the object is no longer reconciled and its
// VM was left as it was. Dropped when the object comes back.
inline constexpr const char* kRemovedAnnotation = "hotplug.dev/removed";
// The spec error the status was computed for (InvalidSpec), so a restart can tell whether
// the spec changed.
inline constexpr const char* kSpecErrorAnnotation = "hotplug.dev/spec-error";
// Set when the user's labels and annotations were left out of the status file because the
// file would not read back with them (too large).
inline constexpr const char* kMetadataOmittedAnnotation = "hotplug.dev/metadata-omitted";
inline constexpr const char* kOperatorAnnotations[] = {
    kSourceFileAnnotation, kRemovedAnnotation, kSpecErrorAnnotation, kMetadataOmittedAnnotation};
bool IsOperatorAnnotation(std::string_view key);

// The largest status or error file read back (and so the largest written).
inline constexpr size_t kMaxStatusFileBytes = 4 * 1024 * 1024;

// True for a Kubernetes object name (DNS-1123 subdomain) / namespace (DNS-1123 label). Only
// such names become file names, so none can escape the folder.
bool IsValidName(std::string_view name);
bool IsValidNamespace(std::string_view ns);

// The object decoded from the text of a status file (spec_error restored from its
// annotation); nullopt with `error` when the text is not one readable object.
std::optional<crd::ElasticVM> DecodeStatusFile(std::string_view text, std::string* error);

class StatusDir {
 public:
  // `input_dir` is the folder of YAML files; the status folder is `input_dir`/.status.
  explicit StatusDir(std::string input_dir);

  // Opens and locks DIR, creates .status if needed (or checks the one there: a real folder,
  // not a symlink, owned by this user; made private), removes temp files a crash left
  // behind. False with `error` when DIR cannot be used; `*locked` is then true when another
  // process holds DIR.
  bool Open(std::string* error, bool* locked = nullptr);

  // DIR, held open for the process (the folder source reads its files relative to it).
  int input_fd() const { return input_fd_.get(); }
  const std::string& path() const { return path_; }

  // File names in .status.
  static std::string ObjectFileName(const std::string& ns, const std::string& name);
  static std::string FileErrorName(const std::string& input_file);
  static constexpr const char* kEventsLog = "events.log";

  // Writes the object (metadata, spec and status) to its file, after checking the text reads
  // back as this object (else the user's labels and annotations are left out, and if it
  // still does not, nothing is written and `error` says why).
  bool WriteObject(const crd::ElasticVM& object, std::string* error) const;
  // The status file of one object, when there is a readable one.
  std::optional<crd::ElasticVM> LoadObject(const std::string& ns, const std::string& name) const;
  // Reads every object file back, keyed "namespace/name"; unreadable files (and anything
  // that is not a regular file, or too large) are logged and skipped (the object then
  // starts afresh).
  std::map<std::string, crd::ElasticVM> LoadObjects() const;

  // The problems of one input file that no object can carry (bad YAML, a document without a
  // name, a duplicate). Written when there are some, removed when there are none.
  bool WriteFileErrors(const std::string& input_file, const std::vector<std::string>& errors,
                       const std::string& time, std::string* error) const;
  bool RemoveFileErrors(const std::string& input_file, std::string* error) const;
  // The error files in .status now (file names), and removing one by that name.
  std::vector<std::string> ErrorFileNames() const;
  void RemoveErrorFile(const std::string& file_name) const;

  // events.log opened for appending (a regular file only, mode 0600); -1 with `error`.
  // `*generation` is the folder's generation it was opened in.
  int OpenEventsLog(uint64_t* generation, std::string* error) const;
  // Renames events.log to events.log.1 (replacing it).
  void RotateEventsLog() const;

  // How many times .status had to be made again since Open (checked now: a folder that is
  // gone is made again by this call). The folder source rewrites every status file when it
  // grows; the event log reopens its file.
  uint64_t generation() const;

 private:
  // The .status folder as it is now: the held descriptor while DIR/.status is still that
  // folder, else a new one (made again when gone). nullptr with `error` when DIR/.status is
  // something the operator must not use (a symlink, a file, another user's folder).
  std::shared_ptr<const UniqueFd> Folder(std::string* error) const;
  std::shared_ptr<const UniqueFd> OpenFolderLocked(bool create, std::string* error) const
      REQUIRES(mu_);
  bool Write(const std::string& name, std::string_view text, std::string* error) const;

  const std::string input_path_;
  const std::string path_;
  UniqueFd input_fd_;  // DIR, locked; set once by Open
  mutable Mutex mu_;
  mutable std::shared_ptr<const UniqueFd> folder_ GUARDED_BY(mu_);
  mutable dev_t folder_dev_ GUARDED_BY(mu_) = 0;
  mutable ino_t folder_ino_ GUARDED_BY(mu_) = 0;
  mutable uint64_t generation_ GUARDED_BY(mu_) = 0;
};

}  // namespace hotplug::controller::standalone

#include "controller/standalone/status_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "controller/log.h"
#include "crd/codec.h"

namespace hotplug::controller::standalone {
namespace {

constexpr std::string_view kFileErrorPrefix = "_file_";
constexpr const char* kStatusFolder = ".status";
constexpr mode_t kFolderMode = 0700;
constexpr mode_t kFileMode = 0600;

std::string ErrnoText(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool IsDnsLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

bool IsDnsLabel(std::string_view label, size_t max_length) {
  if (label.empty() || label.size() > max_length) return false;
  for (char c : label) {
    if (!IsDnsLabelChar(c)) return false;
  }
  return label.front() != '-' && label.back() != '-';
}

// A file name shown in a message: quoted, with bytes that are not UTF-8 replaced.
std::string Shown(const std::string& name) {
  return nlohmann::json(name).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string RenderObject(const crd::ElasticVM& object) {
  crd::ElasticVM record = object;
  if (record.spec_error) {
    record.metadata.annotations[kSpecErrorAnnotation] = *record.spec_error;
  } else {
    record.metadata.annotations.erase(kSpecErrorAnnotation);
  }
  return "# Status of " + object.Key() +
         ", written by hotplug-operator --standalone. Do not edit: it is replaced on every "
         "change.\n" +
         crd::EncodeYamlText(record);
}

// Whether `text` reads back as `object` (what a restart would see).
bool ReadsBackAs(const std::string& text, const crd::ElasticVM& object, std::string* why) {
  if (text.size() > kMaxStatusFileBytes) {
    *why = "the status file would be larger than " + std::to_string(kMaxStatusFileBytes) + " bytes";
    return false;
  }
  std::optional<crd::ElasticVM> back = DecodeStatusFile(text, why);
  if (!back) return false;
  crd::ElasticVM expected = object;
  expected.metadata.annotations.erase(kSpecErrorAnnotation);
  back->metadata.annotations.erase(kSpecErrorAnnotation);
  if (back->spec_error != expected.spec_error ||
      crd::EncodeJson(*back) != crd::EncodeJson(expected)) {
    *why = "the status file would not read back as the object";
    return false;
  }
  return true;
}

}  // namespace

bool IsOperatorAnnotation(std::string_view key) {
  for (const char* reserved : kOperatorAnnotations) {
    if (key == reserved) return true;
  }
  return false;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!IsDnsLabel(label, 253)) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

bool IsValidNamespace(std::string_view ns) { return IsDnsLabel(ns, 63); }

std::optional<crd::ElasticVM> DecodeStatusFile(std::string_view text, std::string* error) {
  std::vector<crd::DecodeResult> results = crd::DecodeYamlText(text);
  if (results.size() != 1 || !results[0].ok()) {
    *error = results.empty()      ? "empty"
             : results.size() > 1 ? "more than one document"
                                  : results[0].error;
    return std::nullopt;
  }
  crd::ElasticVM object = std::move(*results[0].object);
  // Which spec error the status was computed for is in the annotation, not in the spec.
  object.spec_error.reset();
  if (auto it = object.metadata.annotations.find(kSpecErrorAnnotation);
      it != object.metadata.annotations.end()) {
    object.spec_error = it->second;
  }
  return object;
}

StatusDir::StatusDir(std::string input_dir)
    : input_path_(std::move(input_dir)), path_(input_path_ + "/" + kStatusFolder) {}

bool StatusDir::Open(std::string* error, bool* locked) {
  if (locked) *locked = false;
  input_fd_.Reset(open(input_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!input_fd_.valid()) {
    *error = ErrnoText("cannot open the folder", input_path_);
    return false;
  }
  if (flock(input_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      if (locked) *locked = true;
      *error = "another process already owns " + input_path_ +
               " (it holds the folder's lock): only one hotplug-operator --standalone may run "
               "on a folder";
    } else {
      *error = ErrnoText("cannot lock", input_path_);
    }
    input_fd_.Reset();
    return false;
  }
  std::shared_ptr<const UniqueFd> folder;
  {
    MutexLock lock(mu_);
    folder = OpenFolderLocked(/*create=*/true, error);
    generation_ = 0;
  }
  if (!folder) return false;
  if (faccessat(folder->get(), ".", W_OK, AT_EACCESS) != 0) {
    *error = ErrnoText("cannot write to", path_);
    return false;
  }
  for (const auto& name : ListFolder(folder->get())) {
    if (StartsWith(name, kTempPrefix)) unlinkat(folder->get(), name.c_str(), 0);
  }
  return true;
}

std::shared_ptr<const UniqueFd> StatusDir::OpenFolderLocked(bool create, std::string* error) const {
  if (create && mkdirat(input_fd_.get(), kStatusFolder, kFolderMode) != 0 && errno != EEXIST) {
    *error = ErrnoText("cannot create", path_);
    return nullptr;
  }
  UniqueFd fd(
      openat(input_fd_.get(), kStatusFolder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    *error = errno == ELOOP || errno == ENOTDIR
                 ? path_ +
                       " is not a folder (a symlink or a file); the operator writes only "
                       "into a real folder there (remove it and it is made again)"
                 : ErrnoText("cannot open", path_);
    return nullptr;
  }
  struct stat info {};
  if (fstat(fd.get(), &info) != 0) {
    *error = ErrnoText("cannot stat", path_);
    return nullptr;
  }
  if (info.st_uid != geteuid()) {
    *error = path_ + " belongs to another user (uid " + std::to_string(info.st_uid) +
             "); the operator keeps its status private (remove it and it is made again)";
    return nullptr;
  }
  if ((info.st_mode & 07777) != kFolderMode) fchmod(fd.get(), kFolderMode);
  folder_ = std::make_shared<const UniqueFd>(std::move(fd));
  folder_dev_ = info.st_dev;
  folder_ino_ = info.st_ino;
  ++generation_;
  return folder_;
}

std::shared_ptr<const UniqueFd> StatusDir::Folder(std::string* error) const {
  MutexLock lock(mu_);
  struct stat now {};
  int rc = fstatat(input_fd_.get(), kStatusFolder, &now, AT_SYMLINK_NOFOLLOW);
  if (folder_ && rc == 0 && S_ISDIR(now.st_mode) && now.st_dev == folder_dev_ &&
      now.st_ino == folder_ino_) {
    return folder_;
  }
  const bool gone = rc != 0 && errno == ENOENT;
  if (gone)
    log::Warn("standalone: the status folder disappeared; making it again", {{"dir", path_}});
  auto folder = OpenFolderLocked(gone, error);
  if (!folder) folder_.reset();
  return folder;
}

uint64_t StatusDir::generation() const {
  std::string ignored;
  Folder(&ignored);
  MutexLock lock(mu_);
  return generation_;
}

bool StatusDir::Write(const std::string& name, std::string_view text, std::string* error) const {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto folder = Folder(error);
    if (!folder) return false;
    if (WriteFileAtomically(folder->get(), name, text, kFileMode, error)) return true;
    // Removed between the check and the write: the next Folder() makes it again.
    if (errno != ENOENT) return false;
  }
  return false;
}

std::string StatusDir::ObjectFileName(const std::string& ns, const std::string& name) {
  return FitFileName(ns + "_" + name, ".yaml");
}

std::string StatusDir::FileErrorName(const std::string& input_file) {
  return FitFileName(std::string(kFileErrorPrefix) + input_file, ".yaml");
}

bool StatusDir::WriteObject(const crd::ElasticVM& object, std::string* error) const {
  if (!IsValidNamespace(object.metadata.namespace_) || !IsValidName(object.metadata.name)) {
    *error = "refusing to write a status file for the invalid name \"" + object.Key() + "\"";
    return false;
  }
  std::string text = RenderObject(object);
  std::string why;
  if (!ReadsBackAs(text, object, &why)) {
    // The user's labels and annotations are the input file's to keep; the status file needs
    // what identifies the object and its status.
    crd::ElasticVM reduced = object;
    reduced.metadata.labels.clear();
    std::map<std::string, std::string> kept;
    for (const auto& [key, value] : reduced.metadata.annotations) {
      if (IsOperatorAnnotation(key)) kept[key] = value;
    }
    kept[kMetadataOmittedAnnotation] = why;
    reduced.metadata.annotations = std::move(kept);
    text = RenderObject(reduced);
    if (!ReadsBackAs(text, reduced, &why)) {
      *error = "the status file of " + object.Key() + " is not written: " + why;
      return false;
    }
    log::Warn("standalone: the status file leaves out the object's labels and annotations",
              {{"object", object.Key()}, {"why", why}});
  }
  return Write(ObjectFileName(object.metadata.namespace_, object.metadata.name), text, error);
}

std::optional<crd::ElasticVM> StatusDir::LoadObject(const std::string& ns,
                                                    const std::string& name) const {
  std::string error;
  auto folder = Folder(&error);
  if (!folder) return std::nullopt;
  const std::string file = ObjectFileName(ns, name);
  ReadResult read = ReadRegularFile(folder->get(), file, Follow::kNever, kMaxStatusFileBytes);
  if (!read.ok()) {
    if (read.status != ReadStatus::kMissing) {
      log::Warn("standalone: ignoring an unreadable status file; the object starts afresh",
                {{"file", path_ + "/" + file}, {"error", read.error}});
    }
    return std::nullopt;
  }
  std::optional<crd::ElasticVM> object = DecodeStatusFile(read.text, &error);
  if (!object || object->metadata.namespace_ != ns || object->metadata.name != name) {
    log::Warn("standalone: ignoring a status file that is not the object's",
              {{"file", path_ + "/" + file}, {"error", object ? "another object" : error}});
    return std::nullopt;
  }
  return object;
}

std::map<std::string, crd::ElasticVM> StatusDir::LoadObjects() const {
  std::map<std::string, crd::ElasticVM> objects;
  std::string error;
  auto folder = Folder(&error);
  if (!folder) return objects;
  for (const auto& name : ListFolder(folder->get())) {
    if (StartsWith(name, kFileErrorPrefix) || StartsWith(name, ".") || !EndsWith(name, ".yaml")) {
      continue;
    }
    const std::string file = path_ + "/" + name;
    ReadResult read = ReadRegularFile(folder->get(), name, Follow::kNever, kMaxStatusFileBytes);
    if (!read.ok()) {
      log::Warn("standalone: ignoring an unreadable status file; the object starts afresh",
                {{"file", file}, {"error", read.error}});
      continue;
    }
    std::optional<crd::ElasticVM> object = DecodeStatusFile(read.text, &error);
    if (!object) {
      log::Warn("standalone: ignoring an unreadable status file; the object starts afresh",
                {{"file", file}, {"error", error}});
      continue;
    }
    if (ObjectFileName(object->metadata.namespace_, object->metadata.name) != name) {
      log::Warn("standalone: ignoring a status file whose name does not match its object",
                {{"file", file}, {"object", object->Key()}});
      continue;
    }
    std::string key = object->Key();
    objects.emplace(std::move(key), std::move(*object));
  }
  return objects;
}

bool StatusDir::WriteFileErrors(const std::string& input_file,
                                const std::vector<std::string>& errors, const std::string& time,
                                std::string* error) const {
  auto utf8 = [](const std::string& text) {
    return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  // JSON strings are YAML double-quoted scalars: valid UTF-8 whatever the input was.
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "file" << YAML::Value << YAML::DoubleQuoted
      << nlohmann::json::parse(utf8(input_file)).get<std::string>();
  out << YAML::Key << "time" << YAML::Value << time;
  out << YAML::Key << "reason" << YAML::Value << "InvalidSpec";
  out << YAML::Key << "errors" << YAML::Value << YAML::BeginSeq;
  for (const auto& text : errors) {
    out << YAML::DoubleQuoted << nlohmann::json::parse(utf8(text)).get<std::string>();
  }
  out << YAML::EndSeq << YAML::EndMap;
  std::string text = "# Problems of " + Shown(input_file) +
                     " that no object can carry, written by hotplug-operator --standalone.\n" +
                     out.c_str() + "\n";
  if (text.size() > kMaxStatusFileBytes) text.resize(kMaxStatusFileBytes);
  return Write(FileErrorName(input_file), text, error);
}

bool StatusDir::RemoveFileErrors(const std::string& input_file, std::string* error) const {
  auto folder = Folder(error);
  if (!folder) return false;
  std::string name = FileErrorName(input_file);
  if (unlinkat(folder->get(), name.c_str(), 0) != 0 && errno != ENOENT) {
    *error = ErrnoText("cannot remove", path_ + "/" + name);
    return false;
  }
  return true;
}

std::vector<std::string> StatusDir::ErrorFileNames() const {
  std::vector<std::string> files;
  std::string error;
  auto folder = Folder(&error);
  if (!folder) return files;
  for (const auto& name : ListFolder(folder->get())) {
    if (StartsWith(name, kFileErrorPrefix) && EndsWith(name, ".yaml")) files.push_back(name);
  }
  return files;
}

void StatusDir::RemoveErrorFile(const std::string& file_name) const {
  std::string error;
  if (auto folder = Folder(&error)) unlinkat(folder->get(), file_name.c_str(), 0);
}

int StatusDir::OpenEventsLog(uint64_t* generation, std::string* error) const {
  auto folder = Folder(error);
  if (!folder) return -1;
  {
    MutexLock lock(mu_);
    *generation = generation_;
  }
  // O_NONBLOCK: a FIFO put there must not hang the process (with no reader the open fails,
  // with one fstat says what it is).
  UniqueFd fd(openat(folder->get(), kEventsLog,
                     O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
                     kFileMode));
  if (!fd.valid()) {
    *error = errno == ELOOP ? path_ + "/" + kEventsLog + " is a symlink; it is not followed"
                            : ErrnoText("cannot open", path_ + "/" + kEventsLog);
    return -1;
  }
  struct stat info {};
  if (fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    *error = path_ + "/" + kEventsLog + " is not a regular file; it is not written";
    return -1;
  }
  if ((info.st_mode & 07777) != kFileMode && info.st_uid == geteuid()) {
    fchmod(fd.get(), kFileMode);
  }
  return fd.Release();
}

void StatusDir::RotateEventsLog() const {
  std::string error;
  if (auto folder = Folder(&error)) {
    const std::string rotated = std::string(kEventsLog) + ".1";
    renameat(folder->get(), kEventsLog, folder->get(), rotated.c_str());
  }
}

}  // namespace hotplug::controller::standalone

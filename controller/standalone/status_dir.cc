#include "controller/standalone/status_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "controller/log.h"
#include "crd/codec.h"

namespace hotplug::controller::standalone {
namespace {

constexpr std::string_view kFileErrorPrefix = "_file_";
constexpr std::string_view kTempPrefix = ".tmp.";

std::string ErrnoText(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};
using DirHandle = std::unique_ptr<DIR, DirCloser>;

// Regular file names in `dir`, unsorted.
std::vector<std::string> ListFiles(const std::string& dir) {
  std::vector<std::string> names;
  DirHandle handle(opendir(dir.c_str()));
  if (!handle) return names;
  while (dirent* entry = readdir(handle.get())) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(std::move(name));
  }
  return names;
}

bool WriteAll(int fd, std::string_view content) {
  while (!content.empty()) {
    ssize_t n = write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    content.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool IsDnsLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

bool IsDnsLabel(std::string_view label, size_t max_length) {
  if (label.empty() || label.size() > max_length) return false;
  for (char c : label) {
    if (!IsDnsLabelChar(c)) return false;
  }
  return label.front() != '-' && label.back() != '-';
}

}  // namespace

bool WriteFileAtomically(const std::string& path, std::string_view content, std::string* error) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temp = dir + "/" + std::string(kTempPrefix) + base + ".XXXXXX";
  int fd = mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    *error = ErrnoText("cannot create a temp file in", dir);
    return false;
  }
  bool ok = WriteAll(fd, content) && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
  if (!ok) *error = ErrnoText("cannot write", temp);
  if (close(fd) != 0 && ok) {
    ok = false;
    *error = ErrnoText("cannot close", temp);
  }
  if (ok && rename(temp.c_str(), path.c_str()) != 0) {
    ok = false;
    *error = ErrnoText("cannot rename the temp file to", path);
  }
  if (!ok) {
    unlink(temp.c_str());
    return false;
  }
  // The rename itself is durable only once the folder is synced.
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return true;
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

StatusDir::StatusDir(const std::string& input_dir) : path_(input_dir + "/.status") {}

bool StatusDir::Create(std::string* error) {
  if (mkdir(path_.c_str(), 0755) != 0 && errno != EEXIST) {
    *error = ErrnoText("cannot create", path_);
    return false;
  }
  struct stat info {};
  if (stat(path_.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    *error = path_ + " exists and is not a folder";
    return false;
  }
  if (access(path_.c_str(), W_OK) != 0) {
    *error = ErrnoText("cannot write to", path_);
    return false;
  }
  for (const auto& name : ListFiles(path_)) {
    if (name.rfind(kTempPrefix, 0) == 0) unlink((path_ + "/" + name).c_str());
  }
  return true;
}

bool StatusDir::Write(const std::string& path, std::string_view text, std::string* error) const {
  if (WriteFileAtomically(path, text, error)) return true;
  // Someone removed the folder while we run: make it again, once.
  struct stat info {};
  if (stat(path_.c_str(), &info) == 0) return false;
  log::Warn("standalone: the status folder disappeared; creating it again", {{"dir", path_}});
  if (mkdir(path_.c_str(), 0755) != 0 && errno != EEXIST) return false;
  return WriteFileAtomically(path, text, error);
}

std::string StatusDir::ObjectPath(const std::string& ns, const std::string& name) const {
  return path_ + "/" + ns + "_" + name + ".yaml";
}

std::string StatusDir::FileErrorPath(const std::string& input_file) const {
  return path_ + "/" + std::string(kFileErrorPrefix) + input_file + ".yaml";
}

bool StatusDir::WriteObject(const crd::ElasticVM& object, std::string* error) const {
  if (!IsValidNamespace(object.metadata.namespace_) || !IsValidName(object.metadata.name)) {
    *error = "refusing to write a status file for the invalid name \"" + object.Key() + "\"";
    return false;
  }
  crd::ElasticVM record = object;
  if (record.spec_error) {
    record.metadata.annotations[kSpecErrorAnnotation] = *record.spec_error;
  } else {
    record.metadata.annotations.erase(kSpecErrorAnnotation);
  }
  std::string text = "# Status of " + object.Key() +
                     ", written by hotplug-operator --standalone. Do not edit: it is replaced "
                     "on every change.\n" +
                     crd::EncodeYamlText(record);
  return Write(ObjectPath(object.metadata.namespace_, object.metadata.name), text, error);
}

std::map<std::string, crd::ElasticVM> StatusDir::LoadObjects() const {
  std::map<std::string, crd::ElasticVM> objects;
  for (const auto& name : ListFiles(path_)) {
    if (name.rfind(kFileErrorPrefix, 0) == 0 || name.rfind('.', 0) == 0 ||
        !EndsWith(name, ".yaml")) {
      continue;
    }
    std::string file = path_ + "/" + name;
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    std::vector<crd::DecodeResult> results = crd::DecodeYamlText(text.str());
    if (results.size() != 1 || !results[0].ok()) {
      log::Warn("standalone: ignoring an unreadable status file; the object starts afresh",
                {{"file", file}, {"error", results.empty() ? "empty" : results[0].error}});
      continue;
    }
    crd::ElasticVM object = std::move(*results[0].object);
    // Which spec error the status was computed for is in the annotation, not in the spec.
    object.spec_error.reset();
    if (auto it = object.metadata.annotations.find(kSpecErrorAnnotation);
        it != object.metadata.annotations.end()) {
      object.spec_error = it->second;
    }
    if (ObjectPath(object.metadata.namespace_, object.metadata.name) != file) {
      log::Warn("standalone: ignoring a status file whose name does not match its object",
                {{"file", file}, {"object", object.Key()}});
      continue;
    }
    std::string key = object.Key();
    objects.emplace(std::move(key), std::move(object));
  }
  return objects;
}

bool StatusDir::WriteFileErrors(const std::string& input_file,
                                const std::vector<std::string>& errors, const std::string& time,
                                std::string* error) const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "file" << YAML::Value << YAML::DoubleQuoted << input_file;
  out << YAML::Key << "time" << YAML::Value << time;
  out << YAML::Key << "reason" << YAML::Value << "InvalidSpec";
  out << YAML::Key << "errors" << YAML::Value << YAML::BeginSeq;
  for (const auto& text : errors) out << YAML::DoubleQuoted << text;
  out << YAML::EndSeq << YAML::EndMap;
  std::string text = "# Problems of " + input_file +
                     " that no object can carry, written by hotplug-operator --standalone.\n" +
                     out.c_str() + "\n";
  return Write(FileErrorPath(input_file), text, error);
}

bool StatusDir::RemoveFileErrors(const std::string& input_file, std::string* error) const {
  std::string path = FileErrorPath(input_file);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    *error = ErrnoText("cannot remove", path);
    return false;
  }
  return true;
}

std::vector<std::string> StatusDir::FilesWithErrors() const {
  std::vector<std::string> files;
  for (const auto& name : ListFiles(path_)) {
    if (name.rfind(kFileErrorPrefix, 0) != 0 || !EndsWith(name, ".yaml")) continue;
    files.push_back(name.substr(kFileErrorPrefix.size(),
                                name.size() - kFileErrorPrefix.size() - std::strlen(".yaml")));
  }
  return files;
}

}  // namespace hotplug::controller::standalone

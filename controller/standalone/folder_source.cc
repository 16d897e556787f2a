#include "controller/standalone/folder_source.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <ranges>
#include <sstream>

#include "controller/log.h"
#include "crd/codec.h"

namespace hotplug::controller::standalone {
namespace {

constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
                                IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
// Keep gathering events for at most this long before acting on them.
constexpr auto kMaxCoalesce = std::chrono::milliseconds(200);

bool EndsWith(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         std::string_view(text).substr(text.size() - suffix.size()) == suffix;
}

std::string NewUid() {
  static std::mutex mu;
  static std::mt19937_64 random{std::random_device{}()};
  uint64_t high, low;
  {
    std::lock_guard lock(mu);
    high = random();
    low = random();
  }
  // Version 4, variant 1, like a Kubernetes uid.
  high = (high & ~0xF000ull) | 0x4000ull;
  low = (low & ~(0xC000ull << 48)) | (0x8000ull << 48);
  char text[40];
  std::snprintf(text, sizeof(text), "%08llx-%04llx-%04llx-%04llx-%012llx",
                static_cast<unsigned long long>(high >> 32),
                static_cast<unsigned long long>((high >> 16) & 0xFFFF),
                static_cast<unsigned long long>(high & 0xFFFF),
                static_cast<unsigned long long>(low >> 48),
                static_cast<unsigned long long>(low & 0xFFFFFFFFFFFFull));
  return text;
}

// What the generation follows: the spec as written, and whether it could be used. A file's
// strings need not be UTF-8: replace bad bytes rather than throw (a throw here ended the
// process: "type_error.316 invalid UTF-8 byte").
std::string SpecFingerprint(const crd::ElasticVM& object) {
  return crd::EncodeJson(object)["spec"].dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace) +
         "\n" + object.spec_error.value_or("");
}

bool HasStatus(const crd::ElasticVMStatus& status) {
  return status.observed_generation != 0 || !status.conditions.empty() || status.vcpus ||
         status.memory || !status.failures.empty();
}

}  // namespace

FolderSource::FolderSource(std::string dir, StatusDir& status_dir, const reconciler::Clock& clock,
                           Options options)
    : dir_(std::move(dir)), status_dir_(status_dir), clock_(clock), options_(options) {}

FolderSource::~FolderSource() {
  Stop();
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool FolderSource::Init(std::string* error) {
  struct stat info {};
  if (stat(dir_.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    *error = dir_ + " is not a folder";
    return false;
  }
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    *error = std::string("inotify_init1: ") + std::strerror(errno);
    return false;
  }
  if (inotify_add_watch(inotify_fd_, dir_.c_str(), kWatchMask) < 0) {
    *error = "cannot watch " + dir_ + " with inotify: " + std::strerror(errno) +
             (errno == ENOSPC ? " (raise fs.inotify.max_user_watches)" : "");
    return false;
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  previous_ = status_dir_.LoadObjects();
  // Error files of an earlier life: rewritten or removed by the first pass over the folder.
  for (auto& file : status_dir_.FilesWithErrors()) error_files_[std::move(file)] = {};
  return true;
}

void FolderSource::Start(ChangeHandler on_change) {
  if (thread_.joinable() || wake_fd_ < 0) return;
  on_change_ = std::move(on_change);
  thread_ = std::thread([this] { Run(); });
}

void FolderSource::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    log::Error("standalone: cannot wake the folder watch", {{"error", std::strerror(errno)}});
  }
  thread_.join();
}

bool FolderSource::HasSynced() const { return synced_.load(); }

std::optional<crd::ElasticVM> FolderSource::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second.object;
}

std::vector<std::string> FolderSource::Keys() const {
  std::lock_guard lock(mu_);
  auto keys = std::views::keys(cache_);
  return {keys.begin(), keys.end()};
}

bool FolderSource::CommitStatus(const std::string& key, const std::string& uid,
                                const crd::ElasticVMStatus& status, const Persist& persist,
                                std::string* error) {
  std::lock_guard write_lock(write_mu_);
  crd::ElasticVM record;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it == cache_.end() || it->second.object.metadata.uid != uid) {
      log::Debug("standalone: object removed; its status is not written", {{"object", key}});
      return true;
    }
    record = it->second.object;
    record.metadata.annotations[kSourceFileAnnotation] = it->second.file;
  }
  record.status = status;
  if (!persist(record, error)) return false;
  std::lock_guard lock(mu_);
  cache_[key].object.status = status;  // present: removals wait for write_mu_
  return true;
}

bool FolderSource::IsInputFile(const std::string& name) const {
  return !name.empty() && name[0] != '.' && (EndsWith(name, ".yaml") || EndsWith(name, ".yml"));
}

std::string FolderSource::Now() const { return reconciler::FormatRfc3339(clock_.Now()); }

// A library throwing on some input (yaml-cpp, nlohmann) must not end the process: the
// folder is read again on the next change.
void FolderSource::Guarded(const char* what, const std::function<void()>& step) {
  try {
    step();
  } catch (const std::exception& e) {
    log::Error("standalone: unexpected error; the folder is read again on the next change",
               {{"while", what}, {"error", e.what()}});
  }
}

void FolderSource::Run() {
  pthread_setname_np(pthread_self(), "folder-watch");
  Guarded("reading the folder", [this] {
    ScanAll();
    Apply();
  });
  synced_ = true;
  log::Info("standalone: folder read", {{"dir", dir_}, {"objects", std::to_string(Keys().size())}});
  WatchState state;
  while (true) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    int ready = poll(fds, 2, PollTimeoutMs(state, Steady::now()));
    if (ready < 0 && errno != EINTR) {
      log::Error("standalone: poll failed; edits are no longer followed",
                 {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[0].revents & POLLIN) return;
    const auto now = Steady::now();
    const bool got_events = ready > 0 && (fds[1].revents & POLLIN) && ReadEvents(state, now);
    for (auto it = state.settling.begin(); it != state.settling.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      state.dirty.insert(it->first);
      it = state.settling.erase(it);
    }
    ActOnChanges(state, got_events, now);
  }
}

// Until the next file settles or the pending changes are due; -1 (forever) when neither.
int FolderSource::PollTimeoutMs(const WatchState& state, Steady::time_point now) const {
  int timeout_ms = -1;
  auto wait_until = [&](Steady::time_point when) {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
    int bounded = static_cast<int>(std::max<int64_t>(0, ms));
    timeout_ms = timeout_ms < 0 ? bounded : std::min(timeout_ms, bounded);
  };
  for (const auto& [name, due] : state.settling) wait_until(due);
  if (state.pending)
    wait_until(std::min(now + options_.coalesce, state.first_dirty + kMaxCoalesce));
  return timeout_ms;
}

// Reads every queued inotify event into `state`; true when there was any.
bool FolderSource::ReadEvents(WatchState& state, Steady::time_point now) {
  alignas(inotify_event) char buffer[64 * 1024];
  bool got_events = false;
  while (true) {
    ssize_t length = read(inotify_fd_, buffer, sizeof(buffer));
    if (length <= 0) return got_events;
    got_events = true;
    for (char* at = buffer; at < buffer + length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(at);
      at += sizeof(inotify_event) + event->len;
      HandleEvent(*event, state, now);
    }
  }
}

void FolderSource::HandleEvent(const inotify_event& event, WatchState& state,
                               Steady::time_point now) {
  if (event.mask & IN_Q_OVERFLOW) {
    log::Warn("standalone: inotify queue overflowed; reading the whole folder again");
    state.rescan_all = true;
    return;
  }
  if (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
    if (!state.watch_lost) {
      log::Error(
          "standalone: the folder was removed or moved; its objects are kept as last read and "
          "edits are no longer followed",
          {{"dir", dir_}});
    }
    state.watch_lost = true;
    return;
  }
  if (event.len == 0 || (event.mask & IN_ISDIR)) return;
  std::string name = event.name;
  if (!IsInputFile(name)) return;
  if ((event.mask & IN_CREATE) &&
      !(event.mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))) {
    state.settling[name] = now + options_.created_settle;
    return;
  }
  state.settling.erase(name);
  state.dirty.insert(name);
}

// Acts once the burst is over (no event in the last poll) or has lasted long enough.
void FolderSource::ActOnChanges(WatchState& state, bool got_events, Steady::time_point now) {
  if ((!state.dirty.empty() || state.rescan_all) && !state.pending) {
    state.pending = true;
    state.first_dirty = now;
  }
  const bool burst_over = !got_events || now - state.first_dirty >= kMaxCoalesce;
  if (!state.pending || !burst_over) return;
  Guarded("applying a change", [&] {
    if (state.rescan_all || state.watch_lost) {
      ScanAll();
    } else {
      for (const auto& name : state.dirty) ReadFile(name);
    }
    Apply();
  });
  state.dirty.clear();
  state.rescan_all = false;
  state.pending = false;
}

void FolderSource::ScanAll() {
  std::set<std::string> names;
  for (const auto& [name, contents] : files_) names.insert(name);
  if (DIR* handle = opendir(dir_.c_str())) {
    while (dirent* entry = readdir(handle)) {
      if (IsInputFile(entry->d_name)) names.insert(entry->d_name);
    }
    closedir(handle);
  } else {
    // Keep what was read: a folder that vanished changes nothing on the VMs.
    log::Error("standalone: cannot list the folder; keeping the objects as last read",
               {{"dir", dir_}, {"error", std::strerror(errno)}});
    return;
  }
  for (const auto& name : names) ReadFile(name);
}

// What can be read applies; what the file showed before and no longer shows is kept stale.
void FolderSource::KeepStale(FileContents& contents, const std::string& why,
                             std::vector<Document> readable) {
  std::set<std::string> seen;
  for (const auto& document : readable) seen.insert(document.object.Key());
  for (auto& document : contents.documents) {
    if (seen.count(document.object.Key())) continue;
    document.stale = true;
    readable.push_back(std::move(document));
  }
  contents.documents = std::move(readable);
  contents.parse_error = why;
}

void FolderSource::ReadFile(const std::string& name) {
  const std::string path = dir_ + "/" + name;
  struct stat info {};
  if (stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    files_.erase(name);
    return;
  }
  FileContents& contents = files_[name];  // the previous documents, if any
  if (static_cast<size_t>(info.st_size) > crd::kMaxDocumentBytes) {
    return KeepStale(contents, "the file is larger than 4 MiB", {});
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (!in) return KeepStale(contents, std::string("cannot read it: ") + std::strerror(errno), {});

  std::vector<Document> readable;
  const std::string syntax_error = ParseDocuments(buffer.str(), &readable, &contents.errors);
  if (!syntax_error.empty()) return KeepStale(contents, syntax_error, std::move(readable));
  contents.documents = std::move(readable);
  contents.parse_error.clear();
}

std::string FolderSource::ParseDocuments(const std::string& text, std::vector<Document>* readable,
                                         std::vector<std::string>* errors) {
  errors->clear();
  const std::vector<crd::DecodeResult> results = crd::DecodeYamlText(text);
  for (size_t i = 0; i < results.size(); ++i) {
    const int index = static_cast<int>(i) + 1;
    if (!results[i].ok()) {
      // A syntax error ends what can be read of the file; other errors are one document's.
      if (results[i].kind == crd::DecodeError::kSyntax) return results[i].error;
      errors->push_back(results[i].error);
      continue;
    }
    crd::ElasticVM object = *results[i].object;
    const std::string where = "document " + std::to_string(index) + ": ";
    if (!IsValidNamespace(object.metadata.namespace_)) {
      errors->push_back(where + "metadata.namespace \"" + object.metadata.namespace_ +
                        "\" is not a valid namespace (lowercase letters, digits and '-', at "
                        "most 63 characters)");
      continue;
    }
    if (!IsValidName(object.metadata.name)) {
      errors->push_back(where + "metadata.name \"" + object.metadata.name +
                        "\" is not a valid name (lowercase letters, digits, '-' and '.', at "
                        "most 253 characters)");
      continue;
    }
    // What Kubernetes would own is the source's to set; a status in the file is ignored.
    object.metadata.uid.clear();
    object.metadata.resource_version.clear();
    object.metadata.generation = 0;
    object.metadata.creation_timestamp.clear();
    object.status = {};
    readable->push_back({index, std::move(object), false});
  }
  return "";
}

void FolderSource::Apply() {
  rescans_++;
  ErrorsByFile errors_by_file;
  std::map<std::string, Wanted> wanted = WantedObjects(errors_by_file);
  std::vector<std::string> changed;
  {
    std::lock_guard write_lock(write_mu_);
    ForgetRemoved(wanted, changed);
    for (auto& [key, w] : wanted) {
      const CacheUpdate update = UpdateCached(key, w);
      if (update == CacheUpdate::kAbsent) AddNew(key, std::move(w));
      if (update != CacheUpdate::kUnchanged) changed.push_back(key);
    }
    MarkUnclaimedStatusFiles();
  }
  WriteErrorFiles(errors_by_file);
  if (on_change_) {
    for (const auto& key : changed) on_change_(key);
  }
}

std::map<std::string, std::vector<FolderSource::Claim>> FolderSource::Claims(
    ErrorsByFile& errors_by_file) const {
  std::map<std::string, std::vector<Claim>> claims;
  for (const auto& [file, contents] : files_) {
    auto& errors = errors_by_file[file];
    errors = contents.errors;
    if (!contents.parse_error.empty()) {
      bool any_stale = false;
      for (const auto& document : contents.documents) any_stale |= document.stale;
      errors.insert(errors.begin(),
                    contents.parse_error +
                        (any_stale ? "; the objects it no longer shows are kept as last read "
                                     "and nothing is changed on them until it is fixed"
                                   : ""));
    }
    for (const auto& document : contents.documents) {
      claims[document.object.Key()].push_back({&file, &document});
    }
  }
  return claims;
}

std::map<std::string, FolderSource::Wanted> FolderSource::WantedObjects(
    ErrorsByFile& errors_by_file) const {
  std::map<std::string, std::string> current_files;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, entry] : cache_) current_files[key] = entry.file;
  }
  std::map<std::string, Wanted> wanted;
  for (const auto& [key, list] : Claims(errors_by_file)) {
    // The object stays with the file it was first seen in; otherwise the first claim wins.
    size_t owner = 0;
    if (auto it = current_files.find(key); it != current_files.end()) {
      for (size_t i = 0; i < list.size(); ++i) {
        if (*list[i].file == it->second) {
          owner = i;
          break;
        }
      }
    }
    for (size_t i = 0; i < list.size(); ++i) {
      if (i == owner) continue;
      errors_by_file[*list[i].file].push_back(
          "document " + std::to_string(list[i].document->index) + ": " + key +
          " is already defined in " + *list[owner].file + " (document " +
          std::to_string(list[owner].document->index) +
          "); this document is ignored while that one exists");
    }
    Wanted w{*list[owner].file, list[owner].document->object};
    if (list[owner].document->stale) {
      w.object.spec_error = w.file + " cannot be read any more (" + files_.at(w.file).parse_error +
                            "); the object is kept as last read and nothing is changed until "
                            "the file is fixed";
    }
    wanted.emplace(key, std::move(w));
  }
  return wanted;
}

// Removed objects: forget them, change nothing on their VMs, mark their status files.
void FolderSource::ForgetRemoved(const std::map<std::string, Wanted>& wanted,
                                 std::vector<std::string>& changed) {
  std::vector<std::pair<std::string, Entry>> removed;
  {
    std::lock_guard lock(mu_);
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (wanted.count(it->first)) {
        ++it;
        continue;
      }
      removed.emplace_back(it->first, std::move(it->second));
      it = cache_.erase(it);
    }
  }
  for (auto& [key, entry] : removed) {
    log::Info("standalone: object removed; it is no longer reconciled and its VM is left as it is",
              {{"object", key}, {"file", entry.file}});
    crd::ElasticVM record = std::move(entry.object);
    record.metadata.annotations[kSourceFileAnnotation] = entry.file;
    record.metadata.annotations[kRemovedAnnotation] = Now();
    std::string error;
    if (HasStatus(record.status) && !status_dir_.WriteObject(record, &error)) {
      log::Warn("standalone: cannot mark the status file of a removed object",
                {{"object", key}, {"error", error}});
    }
    previous_[key] = std::move(record);
    changed.push_back(key);
  }
}

FolderSource::CacheUpdate FolderSource::UpdateCached(const std::string& key, const Wanted& w) {
  std::unique_lock lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return CacheUpdate::kAbsent;
  crd::ElasticVM& cached = it->second.object;
  const bool spec_changed = SpecFingerprint(cached) != SpecFingerprint(w.object);
  const bool meta_changed = cached.metadata.labels != w.object.metadata.labels ||
                            cached.metadata.annotations != w.object.metadata.annotations;
  it->second.file = w.file;
  if (!spec_changed && !meta_changed) return CacheUpdate::kUnchanged;
  cached.metadata.labels = w.object.metadata.labels;
  cached.metadata.annotations = w.object.metadata.annotations;
  cached.spec = w.object.spec;
  cached.spec_error = w.object.spec_error;
  if (spec_changed) cached.metadata.generation++;
  const std::string generation = std::to_string(cached.metadata.generation);
  lock.unlock();
  if (spec_changed) {
    log::Info("standalone: object changed",
              {{"object", key}, {"file", w.file}, {"generation", generation}});
  }
  return CacheUpdate::kChanged;
}

// New to this process: continue from what an earlier life (or a removal) left.
void FolderSource::AddNew(const std::string& key, Wanted w) {
  crd::ElasticVM object = std::move(w.object);
  bool clear_removed_mark = false;
  if (auto prev = previous_.find(key); prev != previous_.end()) {
    const crd::ElasticVM& before = prev->second;
    object.metadata.uid = before.metadata.uid;
    object.metadata.creation_timestamp = before.metadata.creation_timestamp;
    object.metadata.generation = std::max<int64_t>(before.metadata.generation, 1);
    if (SpecFingerprint(before) != SpecFingerprint(object)) object.metadata.generation++;
    object.status = before.status;
    clear_removed_mark =
        before.metadata.annotations.count(kRemovedAnnotation) && HasStatus(before.status);
    previous_.erase(prev);
  } else {
    object.metadata.generation = 1;
  }
  if (object.metadata.uid.empty()) object.metadata.uid = NewUid();
  if (object.metadata.creation_timestamp.empty()) object.metadata.creation_timestamp = Now();
  crd::ElasticVM record = object;
  {
    std::lock_guard lock(mu_);
    cache_[key] = Entry{std::move(object), w.file};
  }
  if (clear_removed_mark) {
    record.metadata.annotations[kSourceFileAnnotation] = w.file;
    std::string error;
    if (!status_dir_.WriteObject(record, &error)) {
      log::Warn("standalone: cannot unmark the status file of a returning object",
                {{"object", key}, {"error", error}});
    }
  }
  log::Info("standalone: object added",
            {{"object", key},
             {"file", w.file},
             {"generation", std::to_string(record.metadata.generation)}});
}

// Status files of objects no YAML defines any more (seen at start): mark them once.
void FolderSource::MarkUnclaimedStatusFiles() {
  for (auto& [key, record] : previous_) {
    if (record.metadata.annotations.count(kRemovedAnnotation)) continue;
    record.metadata.annotations[kRemovedAnnotation] = Now();
    std::string error;
    if (!status_dir_.WriteObject(record, &error)) {
      log::Warn("standalone: cannot mark the status file of a removed object",
                {{"object", key}, {"error", error}});
    }
    log::Info("standalone: status file of an object no file defines any more; marked removed",
              {{"object", key}});
  }
}

// Problems no object carries: one file each in .status (rewritten only when they change),
// one log line per new problem.
void FolderSource::WriteErrorFiles(const ErrorsByFile& errors_by_file) {
  for (const auto& [file, errors] : errors_by_file) {
    if (errors.empty()) continue;
    auto& written = error_files_[file];
    if (written == errors) continue;
    for (const auto& text : errors) {
      if (std::find(written.begin(), written.end(), text) == written.end()) {
        log::Warn("standalone: bad input ignored", {{"file", file}, {"error", text}});
      }
    }
    std::string error;
    if (!status_dir_.WriteFileErrors(file, errors, Now(), &error)) {
      log::Warn("standalone: cannot write the error file", {{"file", file}, {"error", error}});
    }
    written = errors;
  }
  for (auto it = error_files_.begin(); it != error_files_.end();) {
    auto errors = errors_by_file.find(it->first);
    if (errors != errors_by_file.end() && !errors->second.empty()) {
      ++it;
      continue;
    }
    std::string error;
    if (!status_dir_.RemoveFileErrors(it->first, &error)) {
      log::Warn("standalone: cannot remove the error file",
                {{"file", it->first}, {"error", error}});
    }
    if (!it->second.empty()) log::Info("standalone: file fixed or removed", {{"file", it->first}});
    it = error_files_.erase(it);
  }
}

}  // namespace hotplug::controller::standalone

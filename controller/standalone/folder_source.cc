#include "controller/standalone/folder_source.h"

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
#include <nlohmann/json.hpp>
#include <random>

#include "controller/log.h"
#include "controller/standalone/input_file.h"
#include "controller/standalone/read_pool.h"
#include "controller/standalone/safe_files.h"
#include "crd/codec.h"

namespace hotplug::controller::standalone {
namespace {

constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
                                IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
// Files read and parsed at once: a slow one leaves the other thread to the rest.
constexpr int kReadThreads = 2;
// Keep gathering events for at most this long before acting on them.
constexpr auto kMaxCoalesce = std::chrono::milliseconds(200);

bool EndsWith(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         std::string_view(text).substr(text.size() - suffix.size()) == suffix;
}

std::string NewUid() {
  static Mutex mu;
  static std::mt19937_64 random{std::random_device{}()};
  uint64_t high, low;
  {
    MutexLock lock(mu);
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
  if (status_dir_.input_fd() < 0) {
    *error = dir_ + " is not open (StatusDir::Open first)";
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
  reads_ = std::make_unique<ReadPool>(status_dir_.input_fd(), kReadThreads);
  previous_ = status_dir_.LoadObjects();
  // Error files of an earlier life: rewritten or removed by the first pass over the folder.
  for (auto& name : status_dir_.ErrorFileNames()) stale_error_files_.insert(std::move(name));
  status_generation_ = status_dir_.generation();
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
  MutexLock lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second.object;
}

std::vector<std::string> FolderSource::Keys() const {
  MutexLock lock(mu_);
  std::vector<std::string> keys;
  for (const auto& entry : cache_) keys.push_back(entry.first);  // (clang 14: no views::keys)
  return keys;
}

bool FolderSource::CommitStatus(const std::string& key, const std::string& uid,
                                const crd::ElasticVMStatus& status, const Persist& persist,
                                std::string* error) {
  MutexLock write_lock(write_mu_);
  crd::ElasticVM record;
  {
    MutexLock lock(mu_);
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
  MutexLock lock(mu_);
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
    ReadAll();
    for (const auto& name : stale_error_files_) status_dir_.RemoveErrorFile(name);
    stale_error_files_.clear();
  });
  synced_ = true;
  log::Info("standalone: folder read", {{"dir", dir_}, {"objects", std::to_string(Keys().size())}});
  WatchState state;
  while (true) {
    pollfd fds[3] = {
        {wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}, {reads_->done_fd(), POLLIN, 0}};
    int ready = poll(fds, 3, PollTimeoutMs(state, Steady::now()));
    if (ready < 0 && errno != EINTR) {
      log::Error("standalone: poll failed; edits are no longer followed",
                 {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[0].revents & POLLIN) return;
    if (ready > 0 && (fds[2].revents & POLLIN)) {
      Guarded("applying a change", [this] { ApplyReads(reads_->TakeDone()); });
    }
    const auto now = Steady::now();
    const bool got_events = ready > 0 && (fds[1].revents & POLLIN) && ReadEvents(state, now);
    if (state.status_folder_touched) {
      state.status_folder_touched = false;
      Guarded("making the status folder again", [this] {
        if (status_dir_.generation() != status_generation_) RewriteStatusFolder();
      });
    }
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
  if (event.len == 0) return;
  std::string name = event.name;
  if (event.mask & IN_ISDIR) {
    if (name == ".status") state.status_folder_touched = true;
    return;
  }
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
  // Read and parsed on the read pool; applied as each file is done (Run).
  for (const auto& name : state.rescan_all || state.watch_lost ? ListAll() : state.dirty) {
    reads_->Submit(name);
  }
  state.dirty.clear();
  state.rescan_all = false;
  state.pending = false;
}

void FolderSource::ReadAll() {
  std::set<std::string> names = ListAll();
  for (const auto& name : names) reads_->Submit(name);
  std::vector<FileRead> done;
  while (true) {
    for (auto& read : reads_->TakeDone()) done.push_back(std::move(read));
    if (!reads_->Busy()) break;
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {reads_->done_fd(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) return;  // stopping: Run sees it too
  }
  for (auto& read : reads_->TakeDone()) done.push_back(std::move(read));
  ApplyReads(std::move(done), /*even_if_none=*/true);
}

void FolderSource::ApplyReads(std::vector<FileRead> reads, bool even_if_none) {
  if (reads.empty() && !even_if_none) return;
  std::set<std::string> keys, names;
  for (auto& read : reads) {
    names.insert(read.name);
    ApplyRead(std::move(read), &keys);
  }
  Apply(keys, std::move(names));
}

std::set<std::string> FolderSource::ListAll() {
  std::set<std::string> names;
  for (const auto& [name, contents] : files_) names.insert(name);
  struct stat info {};
  if (fstat(status_dir_.input_fd(), &info) != 0 || info.st_nlink == 0) {
    // Keep what was read: a folder that vanished changes nothing on the VMs.
    log::Error("standalone: cannot list the folder; keeping the objects as last read",
               {{"dir", dir_}});
    return {};
  }
  for (auto& name : ListFolder(status_dir_.input_fd())) {
    if (IsInputFile(name)) names.insert(std::move(name));
  }
  return names;
}

void FolderSource::UnclaimDocuments(const std::string& name, std::set<std::string>* keys) {
  auto found = files_.find(name);
  if (found == files_.end()) return;
  for (const auto& document : found->second.documents) {
    const std::string key = document.object.Key();
    keys->insert(key);
    auto claims = claims_.find(key);
    if (claims == claims_.end()) continue;
    claims->second.erase(Claim{name, document.index});
    if (claims->second.empty()) claims_.erase(claims);
  }
}

void FolderSource::ClaimDocuments(const std::string& name, std::set<std::string>* keys) {
  for (const auto& document : files_.at(name).documents) {
    const std::string key = document.object.Key();
    keys->insert(key);
    claims_[key].insert(Claim{name, document.index});
  }
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

void FolderSource::ApplyRead(FileRead read, std::set<std::string>* keys) {
  const std::string& name = read.name;
  UnclaimDocuments(name, keys);
  if (read.status == ReadStatus::kMissing) {
    files_.erase(name);
    return;
  }
  FileContents& contents = files_[name];  // the previous documents, if any
  if (read.status != ReadStatus::kOk) {
    contents.errors.clear();
    KeepStale(contents,
              read.status == ReadStatus::kTooLarge ? "the file is larger than 4 MiB"
                                                   : "cannot read it: " + read.error,
              {});
  } else {
    std::vector<Document> readable;
    for (auto& document : read.parsed.documents) {
      readable.push_back({document.index, std::move(document.object), false});
    }
    contents.errors = std::move(read.parsed.errors);
    if (!read.parsed.syntax_error.empty()) {
      KeepStale(contents, read.parsed.syntax_error, std::move(readable));
    } else {
      contents.documents = std::move(readable);
      contents.parse_error.clear();
    }
  }
  ClaimDocuments(name, keys);
}

const FolderSource::Document* FolderSource::FindDocument(const Claim& claim) const {
  auto file = files_.find(claim.file);
  if (file == files_.end()) return nullptr;
  for (const auto& document : file->second.documents) {
    if (document.index == claim.index) return &document;
  }
  return nullptr;
}

const FolderSource::Claim* FolderSource::Owner(const std::string& key) const {
  auto claims = claims_.find(key);
  if (claims == claims_.end() || claims->second.empty()) return nullptr;
  // The object stays with the file it was first seen in (in this run, or as its status
  // file says); otherwise the first claim in file order wins.
  std::string owner_file;
  {
    MutexLock lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) owner_file = it->second.file;
  }
  if (owner_file.empty()) {
    if (auto prev = previous_.find(key); prev != previous_.end()) {
      auto source = prev->second.metadata.annotations.find(kSourceFileAnnotation);
      if (source != prev->second.metadata.annotations.end()) owner_file = source->second;
    }
  }
  for (const auto& claim : claims->second) {
    if (claim.file == owner_file) return &claim;
  }
  return &*claims->second.begin();
}

void FolderSource::Apply(const std::set<std::string>& keys, std::set<std::string> files) {
  rescans_++;
  std::vector<std::string> changed;
  {
    MutexLock write_lock(write_mu_);
    for (const auto& key : keys) {
      if (ApplyKey(key, files)) changed.push_back(key);
    }
    MarkUnclaimedStatusFiles();
  }
  WriteErrorFiles(files);
  if (on_change_) {
    for (const auto& key : changed) on_change_(key);
  }
}

// Adds to `files` every file whose error file may change with this key's owner.
bool FolderSource::ApplyKey(const std::string& key, std::set<std::string>& files) {
  if (auto old_owner = owners_.find(key); old_owner != owners_.end()) {
    files.insert(old_owner->second.file);
  }
  const Claim* owner = Owner(key);
  const Document* document = owner ? FindDocument(*owner) : nullptr;
  if (document == nullptr) {
    owners_.erase(key);
    return RemoveObject(key);
  }
  owners_[key] = *owner;
  for (const auto& claim : claims_[key]) files.insert(claim.file);
  crd::ElasticVM wanted = document->object;
  if (document->stale) {
    wanted.spec_error = owner->file + " cannot be read any more (" +
                        files_.at(owner->file).parse_error +
                        "); the object is kept as last read and nothing is changed until the "
                        "file is fixed";
  }
  std::string fingerprint = SpecFingerprint(wanted);
  bool changed = false;
  if (UpdateCached(key, owner->file, wanted, fingerprint, &changed)) return changed;
  AddNew(key, owner->file, std::move(wanted), std::move(fingerprint));
  return true;
}

// Removed: change nothing on its VM, mark its status file, forget it.
bool FolderSource::RemoveObject(const std::string& key) {
  std::optional<Entry> removed;
  {
    MutexLock lock(mu_);
    auto it = cache_.find(key);
    if (it == cache_.end()) return false;
    removed = std::move(it->second);
    cache_.erase(it);
  }
  log::Info("standalone: object removed; it is no longer reconciled and its VM is left as it is",
            {{"object", key}, {"file", removed->file}});
  crd::ElasticVM& record = removed->object;
  record.metadata.annotations[kSourceFileAnnotation] = removed->file;
  record.metadata.annotations[kRemovedAnnotation] = Now();
  std::string error;
  if (HasStatus(record.status) && !status_dir_.WriteObject(record, &error)) {
    log::Warn("standalone: cannot mark the status file of a removed object",
              {{"object", key}, {"error", error}});
  }
  return true;
}

bool FolderSource::UpdateCached(const std::string& key, const std::string& file,
                                crd::ElasticVM& wanted, std::string& fingerprint, bool* changed) {
  MutexLock lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return false;
  crd::ElasticVM& cached = it->second.object;
  const bool spec_changed = it->second.fingerprint != fingerprint;
  const bool meta_changed = cached.metadata.labels != wanted.metadata.labels ||
                            cached.metadata.annotations != wanted.metadata.annotations;
  it->second.file = file;
  *changed = spec_changed || meta_changed;
  if (!*changed) return true;
  cached.metadata.labels = std::move(wanted.metadata.labels);
  cached.metadata.annotations = std::move(wanted.metadata.annotations);
  cached.spec = std::move(wanted.spec);
  cached.spec_error = std::move(wanted.spec_error);
  it->second.fingerprint = std::move(fingerprint);
  if (spec_changed) cached.metadata.generation++;
  const std::string generation = std::to_string(cached.metadata.generation);
  lock.Unlock();
  if (spec_changed) {
    log::Info("standalone: object changed",
              {{"object", key}, {"file", file}, {"generation", generation}});
  }
  return true;
}

// New to this process: continue from what an earlier life (or a removal) left in its status
// file: read at start, or now for an object that returns.
void FolderSource::AddNew(const std::string& key, const std::string& file, crd::ElasticVM object,
                          std::string fingerprint) {
  std::optional<crd::ElasticVM> before;
  if (auto prev = previous_.find(key); prev != previous_.end()) {
    before = std::move(prev->second);
    previous_.erase(prev);
  } else if (synced_) {
    before = status_dir_.LoadObject(object.metadata.namespace_, object.metadata.name);
  }
  bool clear_removed_mark = false;
  object.metadata.generation = 1;
  if (before) {
    object.metadata.uid = before->metadata.uid;
    object.metadata.creation_timestamp = before->metadata.creation_timestamp;
    object.metadata.generation = std::max<int64_t>(before->metadata.generation, 1);
    if (SpecFingerprint(*before) != fingerprint) object.metadata.generation++;
    object.status = before->status;
    clear_removed_mark =
        before->metadata.annotations.count(kRemovedAnnotation) && HasStatus(before->status);
  }
  if (object.metadata.uid.empty()) object.metadata.uid = NewUid();
  if (object.metadata.creation_timestamp.empty()) object.metadata.creation_timestamp = Now();
  const std::string generation = std::to_string(object.metadata.generation);
  crd::ElasticVM record = object;
  {
    MutexLock lock(mu_);
    cache_[key] = Entry{std::move(object), file, std::move(fingerprint)};
  }
  if (clear_removed_mark) {
    record.metadata.annotations[kSourceFileAnnotation] = file;
    std::string error;
    if (!status_dir_.WriteObject(record, &error)) {
      log::Warn("standalone: cannot unmark the status file of a returning object",
                {{"object", key}, {"error", error}});
    }
  }
  log::Info("standalone: object added",
            {{"object", key}, {"file", file}, {"generation", generation}});
}

// Status files of objects no YAML defines any more (seen at start): mark them once and
// forget them (the file keeps what a returning object needs).
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
  previous_.clear();
}

std::vector<std::string> FolderSource::FileErrors(const std::string& file) const {
  auto found = files_.find(file);
  if (found == files_.end()) return {};
  const FileContents& contents = found->second;
  std::vector<std::string> errors;
  if (!contents.parse_error.empty()) {
    bool any_stale = false;
    for (const auto& document : contents.documents) any_stale |= document.stale;
    errors.push_back(contents.parse_error +
                     (any_stale ? "; the objects it no longer shows are kept as last read "
                                  "and nothing is changed on them until it is fixed"
                                : ""));
  }
  errors.insert(errors.end(), contents.errors.begin(), contents.errors.end());
  for (const auto& document : contents.documents) {
    const std::string key = document.object.Key();
    auto owner = owners_.find(key);
    if (owner == owners_.end() || owner->second == Claim{file, document.index}) continue;
    errors.push_back("document " + std::to_string(document.index) + ": " + key +
                     " is already defined in " + owner->second.file + " (document " +
                     std::to_string(owner->second.index) +
                     "); this document is ignored while that one exists");
  }
  return errors;
}

// Problems no object carries: one file each in .status (rewritten only when they change),
// one log line per new problem.
void FolderSource::WriteErrorFiles(const std::set<std::string>& files) {
  for (const auto& file : files) {
    std::vector<std::string> errors = FileErrors(file);
    stale_error_files_.erase(StatusDir::FileErrorName(file));
    auto written = error_files_.find(file);
    std::string error;
    if (errors.empty()) {
      if (written == error_files_.end()) continue;
      if (!status_dir_.RemoveFileErrors(file, &error)) {
        log::Warn("standalone: cannot remove the error file", {{"file", file}, {"error", error}});
      }
      log::Info("standalone: file fixed or removed", {{"file", file}});
      error_files_.erase(written);
      continue;
    }
    if (written != error_files_.end() && written->second == errors) continue;
    for (const auto& text : errors) {
      if (written == error_files_.end() || std::find(written->second.begin(), written->second.end(),
                                                     text) == written->second.end()) {
        log::Warn("standalone: bad input ignored", {{"file", file}, {"error", text}});
      }
    }
    if (!status_dir_.WriteFileErrors(file, errors, Now(), &error)) {
      log::Warn("standalone: cannot write the error file", {{"file", file}, {"error", error}});
    }
    error_files_[file] = std::move(errors);
  }
}

void FolderSource::RewriteStatusFolder() {
  status_generation_ = status_dir_.generation();
  size_t written = 0;
  {
    MutexLock write_lock(write_mu_);
    std::vector<crd::ElasticVM> records;
    {
      MutexLock lock(mu_);
      for (const auto& [key, entry] : cache_) {
        if (!HasStatus(entry.object.status)) continue;
        records.push_back(entry.object);
        records.back().metadata.annotations[kSourceFileAnnotation] = entry.file;
      }
    }
    for (const auto& record : records) {
      std::string error;
      if (status_dir_.WriteObject(record, &error)) {
        ++written;
      } else {
        log::Warn("standalone: cannot write a status file again",
                  {{"object", record.Key()}, {"error", error}});
      }
    }
  }
  std::set<std::string> files;
  for (const auto& [file, errors] : error_files_) files.insert(file);
  error_files_.clear();
  WriteErrorFiles(files);
  log::Warn("standalone: the status folder was made again; its files are written again",
            {{"dir", status_dir_.path()}, {"statusFiles", std::to_string(written)}});
}

}  // namespace hotplug::controller::standalone

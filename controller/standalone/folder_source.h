// The ObjectSource of standalone mode: every ElasticVM in the *.yaml / *.yml files of one
// folder (several documents per file), kept in a cache keyed "namespace/name" and refreshed
// within a second of an edit through inotify (editors that write a temp file and rename it
// over the original included). The source owns metadata that Kubernetes would own: uid,
// creationTimestamp and a generation that grows whenever an object's spec changes, so
// observedGeneration means what it means in a cluster. With the status files
// (status_dir.h) it survives a restart: an unchanged spec keeps its generation and its
// status, conditions' lastTransitionTime and failures included.
//
// Rules:
//  - Files whose name starts with '.' and files not ending in .yaml/.yml are ignored.
//  - A document that is not an ElasticVM, has no usable name, or repeats a namespace/name
//    defined earlier (the object keeps the file it was first seen in; at start, files in name
//    order) is ignored and reported in .status/_file_<file>.yaml and a log line.
//  - A document whose spec is bad is kept and reported as InvalidSpec on its own status.
//  - A file that stops parsing as YAML keeps the objects it no longer shows (those after the
//    syntax error) as last read, each marked with a spec error (InvalidSpec, nothing changed
//    on the VM) until the file is fixed or removed; the documents before the error apply.
//  - A removed document stops its object's reconciliation and changes nothing on the VM; its
//    status file stays, marked with the hotplug.dev/removed annotation, and is picked up
//    again if the object comes back.
//  - spec.nodeName is not checked: the folder belongs to this host.
#pragma once

#include <sys/inotify.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "controller/source.h"
#include "controller/standalone/status_dir.h"
#include "crd/elasticvm.h"
#include "reconciler/clock.h"

namespace hotplug::controller::standalone {

class FolderSource final : public ObjectSource {
 public:
  struct Options {
    // A file that was created but not yet closed after a write is read after this quiet
    // time (hard links, `ln -s`, writers that keep it open).
    std::chrono::milliseconds created_settle{300};
    // Events arriving this close together are handled as one change (an editor's
    // write-rename-chmod sequence).
    std::chrono::milliseconds coalesce{20};
  };

  // `dir` must exist; `status_dir` must outlive the source. `clock` stamps times a person
  // reads (creationTimestamp, removal marks).
  FolderSource(std::string dir, StatusDir& status_dir, const reconciler::Clock& clock,
               Options options);
  FolderSource(std::string dir, StatusDir& status_dir, const reconciler::Clock& clock)
      : FolderSource(std::move(dir), status_dir, clock, Options{}) {}
  ~FolderSource() override;
  FolderSource(const FolderSource&) = delete;
  FolderSource& operator=(const FolderSource&) = delete;

  // Opens the inotify watch (before the first read, so no edit falls between the two).
  // False with `error` when the folder cannot be watched.
  bool Init(std::string* error);

  // ObjectSource. Start reads every file on the "folder-watch" thread, reports every key,
  // then HasSynced() turns true and edits are followed.
  void Start(ChangeHandler on_change) override;
  void Stop() override;
  bool HasSynced() const override;
  std::optional<crd::ElasticVM> Get(const std::string& key) const override;
  std::vector<std::string> Keys() const override;

  // Stores a new status for the object `key` with uid `uid`: `persist` is called with the
  // object as it should be written (cached metadata and spec, the new status); on success
  // the cache holds the new status, so the next pass starts from it. Serialised with
  // removals: once an object is removed no status is written for it (returns true, nothing
  // written). Called by FileStatusWriter from the workers.
  using Persist = std::function<bool(const crd::ElasticVM& record, std::string* error)>;
  bool CommitStatus(const std::string& key, const std::string& uid,
                    const crd::ElasticVMStatus& status, const Persist& persist, std::string* error);

  // How many times the folder contents were re-evaluated (tests, logs).
  int64_t rescans() const { return rescans_.load(); }

 private:
  struct Document {
    int index = 0;  // 1-based position in the file
    crd::ElasticVM object;
    // Not in the part of the file that could be read now: kept as last read, not applied.
    bool stale = false;
  };
  struct FileContents {
    std::vector<Document> documents;
    std::vector<std::string> errors;  // per document, "document N: ..."
    // The file could not be read (or not past a syntax error); what it no longer shows is
    // kept stale.
    std::string parse_error;
  };
  struct Entry {
    crd::ElasticVM object;  // with metadata the source owns and the last written status
    std::string file;       // the file it came from
  };
  using Steady = std::chrono::steady_clock;
  // The watch thread's changes not acted on yet.
  struct WatchState {
    std::set<std::string> dirty;
    std::map<std::string, Steady::time_point> settling;  // created, not yet closed
    bool rescan_all = false;
    bool watch_lost = false;
    // Changes wait since `first_dirty` (valid while `pending`; not an optional: GCC 12 warns
    // maybe-uninitialized on one at -O2).
    bool pending = false;
    Steady::time_point first_dirty{};
  };
  // A document claiming a key, and the object the cache should hold for a key.
  struct Claim {
    const std::string* file;
    const Document* document;
  };
  struct Wanted {
    std::string file;
    crd::ElasticVM object;
  };
  using ErrorsByFile = std::map<std::string, std::vector<std::string>>;
  enum class CacheUpdate { kAbsent, kUnchanged, kChanged };

  // --- the watch thread
  void Run();
  void Guarded(const char* what, const std::function<void()>& step);
  int PollTimeoutMs(const WatchState& state, Steady::time_point now) const;
  bool ReadEvents(WatchState& state, Steady::time_point now);
  void HandleEvent(const inotify_event& event, WatchState& state, Steady::time_point now);
  void ActOnChanges(WatchState& state, bool got_events, Steady::time_point now);

  // --- reading files into files_
  void ScanAll();
  // Reads one file into files_ (or drops it when it is gone or ignored).
  void ReadFile(const std::string& name);
  static void KeepStale(FileContents& contents, const std::string& why,
                        std::vector<Document> readable);
  // The usable documents of `text` and one error per unusable one; the syntax error that
  // ended the reading, "" when none did.
  static std::string ParseDocuments(const std::string& text, std::vector<Document>* readable,
                                    std::vector<std::string>* errors);

  // --- applying files_ to the cache
  // Recomputes the objects from files_, applies the differences to the cache, writes the
  // per-file error files, and reports the changed keys.
  void Apply();
  // Every document that names a key, files in name order, documents in file order.
  std::map<std::string, std::vector<Claim>> Claims(ErrorsByFile& errors_by_file) const;
  std::map<std::string, Wanted> WantedObjects(ErrorsByFile& errors_by_file) const;
  void ForgetRemoved(const std::map<std::string, Wanted>& wanted,
                     std::vector<std::string>& changed);
  CacheUpdate UpdateCached(const std::string& key, const Wanted& wanted);
  void AddNew(const std::string& key, Wanted wanted);
  void MarkUnclaimedStatusFiles();
  void WriteErrorFiles(const ErrorsByFile& errors_by_file);
  bool IsInputFile(const std::string& name) const;
  std::string Now() const;

  const std::string dir_;
  StatusDir& status_dir_;
  const reconciler::Clock& clock_;
  const Options options_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;    // eventfd: Stop wakes the watch thread
  std::thread thread_;  // "folder-watch"
  ChangeHandler on_change_;
  std::atomic<bool> synced_{false};
  std::atomic<int64_t> rescans_{0};

  // Only the watch thread touches these.
  std::map<std::string, FileContents> files_;       // by file name, sorted
  std::map<std::string, crd::ElasticVM> previous_;  // last known state of removed objects
  // Input files with an error file in .status, and the errors it holds.
  std::map<std::string, std::vector<std::string>> error_files_;

  // Serialises status-file writes with removals and re-additions (held across file I/O).
  // Lock order: write_mu_, then mu_.
  std::mutex write_mu_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> cache_;  // guarded by mu_
};

}  // namespace hotplug::controller::standalone

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
//  - Files whose name starts with '.' and files not ending in .yaml/.yml are ignored. A file
//    is read only when it is a regular file of at most 4 MiB, opened without following a
//    symlink out of the folder and without blocking (a FIFO, a device, a symlink to
//    /etc/shadow are each reported in the file's error file, never read); a file name that
//    is not UTF-8 text is reported too.
//  - The operator's own annotations (status_dir.h) in a file are ignored and reported.
//  - A document that is not an ElasticVM, has no usable name, or repeats a namespace/name
//    defined earlier (the object keeps the file it was first seen in, across restarts too:
//    its status file says which; otherwise files in name order) is ignored and reported in
//    .status/_file_<file>.yaml and a log line.
//  - A document whose spec is bad is kept and reported as InvalidSpec on its own status.
//  - A file that stops parsing as YAML keeps the objects it no longer shows (those after the
//    syntax error) as last read, each marked with a spec error (InvalidSpec, nothing changed
//    on the VM) until the file is fixed or removed; the documents before the error apply.
//  - A removed document stops its object's reconciliation and changes nothing on the VM; its
//    status file stays, marked with the hotplug.dev/removed annotation, and is picked up
//    again (read back from that file) if the object comes back: nothing of a removed object
//    stays in memory.
//  - DIR/.status removed while running is made again and every status file rewritten.
//  - An edit re-reads only the files it touched and re-evaluates only the objects they
//    define, so it is seen within a second however many objects the folder holds.
//  - spec.nodeName is not checked: the folder belongs to this host.
#pragma once

#include <sys/inotify.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/thread_annotations.h"
#include "controller/source.h"
#include "controller/standalone/read_pool.h"
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
  // A document that names a key: which file, which document.
  struct Claim {
    std::string file;
    int index = 0;
    bool operator<(const Claim& other) const {
      return file != other.file ? file < other.file : index < other.index;
    }
    bool operator==(const Claim& other) const { return file == other.file && index == other.index; }
  };
  struct Entry {
    crd::ElasticVM object;    // with metadata the source owns and the last written status
    std::string file;         // the file it came from
    std::string fingerprint;  // SpecFingerprint(object), kept to compare edits cheaply
  };
  using Steady = std::chrono::steady_clock;
  // The watch thread's changes not acted on yet.
  struct WatchState {
    std::set<std::string> dirty;
    std::map<std::string, Steady::time_point> settling;  // created, not yet closed
    bool rescan_all = false;
    bool watch_lost = false;
    bool status_folder_touched = false;  // DIR/.status was removed, made or replaced
    // Changes wait since `first_dirty` (valid while `pending`; not an optional: GCC 12 warns
    // maybe-uninitialized on one at -O2).
    bool pending = false;
    Steady::time_point first_dirty{};
  };

  // --- the watch thread
  void Run();
  void Guarded(const char* what, const std::function<void()>& step);
  int PollTimeoutMs(const WatchState& state, Steady::time_point now) const;
  bool ReadEvents(WatchState& state, Steady::time_point now);
  void HandleEvent(const inotify_event& event, WatchState& state, Steady::time_point now);
  void ActOnChanges(WatchState& state, bool got_events, Steady::time_point now);

  // --- reading files into files_ and claims_
  // Re-reads every input file (those in the folder now and those read before), waits for
  // them all and applies them at once (the first pass).
  void ReadAll();
  std::set<std::string> ListAll();
  // Applies what the read pool read: files_ and claims_, then the keys involved (the first
  // pass applies even when the folder holds no file: status files of an earlier run).
  void ApplyReads(std::vector<FileRead> reads, bool even_if_none = false);
  // One file into files_ (or dropped when it is gone), claims_ updated; adds the keys it
  // defined before or defines now to `keys`.
  void ApplyRead(FileRead read, std::set<std::string>* keys);
  // Drops / registers the claims of the documents files_ holds for `name`.
  void UnclaimDocuments(const std::string& name, std::set<std::string>* keys);
  void ClaimDocuments(const std::string& name, std::set<std::string>* keys);
  static void KeepStale(FileContents& contents, const std::string& why,
                        std::vector<Document> readable);

  // --- applying the claims of some keys to the cache
  // Re-evaluates the objects `keys` (whose claims changed), applies the differences to the
  // cache, rewrites the error files of the files involved, and reports the changed keys.
  void Apply(const std::set<std::string>& keys, std::set<std::string> files);
  // One key; true when it changed.
  bool ApplyKey(const std::string& key, std::set<std::string>& files);
  const Document* FindDocument(const Claim& claim) const;
  // Which claim of `key` wins (the current owner's file, else the one its status file
  // names, else the first in file order); nullptr when none.
  const Claim* Owner(const std::string& key) const;
  bool RemoveObject(const std::string& key);
  // Updates the cached object from its document; false when it is not cached.
  bool UpdateCached(const std::string& key, const std::string& file, crd::ElasticVM& wanted,
                    std::string& fingerprint, bool* changed);
  void AddNew(const std::string& key, const std::string& file, crd::ElasticVM wanted,
              std::string fingerprint);
  void MarkUnclaimedStatusFiles();
  std::vector<std::string> FileErrors(const std::string& file) const;
  void WriteErrorFiles(const std::set<std::string>& files);
  // The status folder was made again: every status and error file is written anew.
  void RewriteStatusFolder();
  bool IsInputFile(const std::string& name) const;
  std::string Now() const;

  const std::string dir_;
  StatusDir& status_dir_;
  const reconciler::Clock& clock_;
  const Options options_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;                 // eventfd: Stop wakes the watch thread
  std::thread thread_;               // "folder-watch"
  std::unique_ptr<ReadPool> reads_;  // its threads read and parse; results go to the watch thread
  ChangeHandler on_change_;
  std::atomic<bool> synced_{false};
  std::atomic<int64_t> rescans_{0};

  // Only the watch thread touches these.
  std::map<std::string, FileContents> files_;      // by file name, sorted
  std::map<std::string, std::set<Claim>> claims_;  // by key: every document naming it
  std::map<std::string, Claim> owners_;            // by key: the claim that won
  // Status files of an earlier run not yet matched to a document (emptied by the first pass:
  // the unmatched ones are marked removed and forgotten).
  std::map<std::string, crd::ElasticVM> previous_;
  // Input files with an error file in .status, and the errors it holds.
  std::map<std::string, std::vector<std::string>> error_files_;
  // Error files found at start, removed after the first pass unless rewritten.
  std::set<std::string> stale_error_files_;
  uint64_t status_generation_ = 0;  // of status_dir_ when every file was last written

  // Serialises status-file writes with removals and re-additions (held across file I/O).
  // Lock order: write_mu_, then mu_.
  Mutex write_mu_;
  mutable Mutex mu_;
  std::map<std::string, Entry> cache_ GUARDED_BY(mu_);
};

}  // namespace hotplug::controller::standalone

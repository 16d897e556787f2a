// Reads and parses the folder's input files on threads of their own ("folder-read"), so the
// watch thread keeps draining inotify and one slow file (a pathological parse, however
// bounded) never holds up another file's edit: each file is read by the next free thread and
// its result is handed back as soon as it is done. One read per file at a time; a file
// changed again while being read is read once more afterwards.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/thread_annotations.h"
#include "controller/standalone/input_file.h"
#include "controller/standalone/safe_files.h"

namespace hotplug::controller::standalone {

// One input file as read: what the read said and, when it gave text, the parse.
struct FileRead {
  std::string name;
  ReadStatus status = ReadStatus::kError;
  std::string error;  // when status is not kOk
  ParsedInputFile parsed;
};

// Reads `name` below `dir_fd` (no symlink out of it, regular files of at most 4 MiB, a name
// that is UTF-8 text) and parses it. A pure function of the folder's contents.
FileRead ReadInputFile(int dir_fd, const std::string& name);

class ReadPool {
 public:
  // `dir_fd` must stay open while the pool runs.
  ReadPool(int dir_fd, int threads);
  ~ReadPool();
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // Asks for `name` to be read (again).
  void Submit(const std::string& name);
  // The reads finished since the last call, in the order they finished.
  std::vector<FileRead> TakeDone();
  // Readable (an eventfd) while finished reads wait to be taken.
  int done_fd() const { return done_fd_; }
  // True while a read is queued or under way.
  bool Busy() const;

 private:
  void Work();

  const int dir_fd_;
  int done_fd_ = -1;
  mutable Mutex mu_;
  std::condition_variable wake_;
  // Names waiting, names being read, names changed again while being read,
  // and finished reads.
  std::deque<std::string> queue_ GUARDED_BY(mu_);
  std::set<std::string> queued_ GUARDED_BY(mu_);
  std::set<std::string> reading_ GUARDED_BY(mu_);
  std::set<std::string> again_ GUARDED_BY(mu_);
  std::vector<FileRead> done_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // "folder-read"
};

}  // namespace hotplug::controller::standalone

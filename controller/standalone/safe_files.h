// Files of standalone mode, opened relative to a held folder descriptor so that nothing a
// hostile host puts in the folder (a symlink out of it, a FIFO, a device, a huge file) makes
// the operator read, write or block where it should not: every open is O_NONBLOCK and
// checked with fstat, only regular files are read, and every read is bounded by size.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hotplug::controller::standalone {

// An owned file descriptor (closed on destruction; movable, not copyable).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// How a path below the folder may be resolved.
enum class Follow {
  kNever,    // the last component must not be a symlink (the operator's own files)
  kBeneath,  // symlinks are followed only while they stay inside the folder (input files)
};

// Why a read gave no text; callers decide by the kind.
enum class ReadStatus { kOk, kMissing, kNotRegular, kTooLarge, kOutside, kError };

struct ReadResult {
  ReadStatus status = ReadStatus::kError;
  std::string text;   // kOk
  std::string error;  // otherwise: what happened, for a log line or an error file
  bool ok() const { return status == ReadStatus::kOk; }
};

// Reads `name` (relative to the folder `dir_fd`) when it is a regular file of at most
// `max_bytes`. Never blocks on a FIFO or device and never reads past `max_bytes` + 1.
ReadResult ReadRegularFile(int dir_fd, const std::string& name, Follow follow, size_t max_bytes);

// Opens `name` below `dir_fd` read-only, non-blocking; -1 with errno set on failure (EXDEV
// or ELOOP when a symlink would leave the folder or is not allowed).
int OpenBeneath(int dir_fd, const std::string& name, Follow follow, int flags);

// Writes `content` to `name` in the folder `dir_fd` so that it holds either the old or the
// new content, never a mix: a temp file (".tmp." + name + random, mode `mode`), fsync,
// renameat over `name` (which replaces a symlink there rather than following it), fsync of
// the folder.
bool WriteFileAtomically(int dir_fd, const std::string& name, std::string_view content, mode_t mode,
                         std::string* error);

// The names in the folder `dir_fd` (without "." and ".."), unsorted. Empty when it cannot be
// listed.
std::vector<std::string> ListFolder(int dir_fd);

// The prefix of WriteFileAtomically's temp files (removed at start: a crash leaves them).
inline constexpr std::string_view kTempPrefix = ".tmp.";

// The longest file name the operator creates (below NAME_MAX, leaving room for the temp
// file's prefix and suffix).
inline constexpr size_t kMaxFileNameBytes = 200;

// `stem` + `extension` when that fits kMaxFileNameBytes; otherwise a prefix of `stem`, '~',
// and 32 hex digits of the SHA-256 of `stem` (so any stem gets a name of its own).
std::string FitFileName(const std::string& stem, std::string_view extension);

}  // namespace hotplug::controller::standalone

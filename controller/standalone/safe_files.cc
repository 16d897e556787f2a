#include "controller/standalone/safe_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>

namespace hotplug::controller::standalone {
namespace {

std::string ErrnoText(const std::string& what, const std::string& name) {
  return what + " " + name + ": " + std::strerror(errno);
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

std::string RandomSuffix() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(random()));
  return text;
}

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

}  // namespace

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

int OpenBeneath(int dir_fd, const std::string& name, Follow follow, int flags) {
  flags |= O_CLOEXEC | O_NOCTTY;
  if (follow == Follow::kNever) return openat(dir_fd, name.c_str(), flags | O_NOFOLLOW);
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, dir_fd, name.c_str(), &how, sizeof(how)));
  if (fd >= 0 || errno != ENOSYS) return fd;
  // A kernel before 5.6: no symlink at all is the safe approximation.
  return openat(dir_fd, name.c_str(), flags | O_NOFOLLOW);
}

ReadResult ReadRegularFile(int dir_fd, const std::string& name, Follow follow, size_t max_bytes) {
  ReadResult result;
  UniqueFd fd(OpenBeneath(dir_fd, name, follow, O_RDONLY | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      result.status = ReadStatus::kMissing;
      result.error = "it does not exist";
    } else if (errno == EXDEV || errno == ELOOP) {
      result.status = ReadStatus::kOutside;
      result.error = follow == Follow::kNever
                         ? "it is a symlink; the operator's own files are never symlinks"
                         : "it is a symlink that leads out of the folder; it is not read";
    } else {
      result.error = std::string("cannot open it: ") + std::strerror(errno);
    }
    return result;
  }
  struct stat info {};
  if (fstat(fd.get(), &info) != 0) {
    result.error = std::string("cannot stat it: ") + std::strerror(errno);
    return result;
  }
  if (!S_ISREG(info.st_mode)) {
    result.status = ReadStatus::kNotRegular;
    result.error = "it is not a regular file (a FIFO, device, socket or folder); it is not read";
    return result;
  }
  auto too_large = [&] {
    result.status = ReadStatus::kTooLarge;
    result.error = "it is larger than " + std::to_string(max_bytes) + " bytes; it is not read";
    result.text.clear();
    return result;
  };
  if (static_cast<uint64_t>(info.st_size) > max_bytes) return too_large();
  result.text.resize(static_cast<size_t>(info.st_size) + 1);
  size_t used = 0;
  while (true) {
    if (used == result.text.size()) {
      if (used > max_bytes) return too_large();  // it grew while we read
      result.text.resize(std::min(max_bytes + 1, used * 2 + 4096));
    }
    ssize_t n = read(fd.get(), result.text.data() + used, result.text.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error = std::string("cannot read it: ") + std::strerror(errno);
      result.text.clear();
      return result;
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > max_bytes) return too_large();
  result.text.resize(used);
  result.status = ReadStatus::kOk;
  return result;
}

bool WriteFileAtomically(int dir_fd, const std::string& name, std::string_view content, mode_t mode,
                         std::string* error) {
  std::string temp;
  int raw = -1;
  for (int attempt = 0; attempt < 8 && raw < 0; ++attempt) {
    temp = std::string(kTempPrefix) + name + "." + RandomSuffix();
    raw = openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (raw < 0 && errno != EEXIST) break;
  }
  if (raw < 0) {
    *error = ErrnoText("cannot create a temp file for", name);
    return false;
  }
  UniqueFd fd(raw);
  // The umask may have taken bits away; set exactly what was asked.
  bool ok = WriteAll(fd.get(), content) && fchmod(fd.get(), mode) == 0 && fsync(fd.get()) == 0;
  if (!ok) *error = ErrnoText("cannot write", temp);
  if (close(fd.Release()) != 0 && ok) {
    ok = false;
    *error = ErrnoText("cannot close", temp);
  }
  if (ok && renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0) {
    ok = false;
    *error = ErrnoText("cannot rename the temp file to", name);
  }
  if (!ok) {
    unlinkat(dir_fd, temp.c_str(), 0);
    return false;
  }
  fsync(dir_fd);  // the rename itself is durable only once the folder is synced
  return true;
}

std::vector<std::string> ListFolder(int dir_fd) {
  std::vector<std::string> names;
  int copy = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (copy < 0) return names;
  std::unique_ptr<DIR, int (*)(DIR*)> handle(fdopendir(copy), closedir);
  if (!handle) {
    close(copy);
    return names;
  }
  while (dirent* entry = readdir(handle.get())) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  return names;
}

std::string FitFileName(const std::string& stem, std::string_view extension) {
  if (stem.size() + extension.size() <= kMaxFileNameBytes) return stem + std::string(extension);
  constexpr size_t kHashDigits = 32;
  size_t keep = kMaxFileNameBytes - extension.size() - kHashDigits - 1;
  // Do not cut a UTF-8 sequence in two.
  while (keep > 0 && (static_cast<unsigned char>(stem[keep]) & 0xC0) == 0x80) --keep;
  return stem.substr(0, keep) + "~" + Sha256Hex(stem).substr(0, kHashDigits) +
         std::string(extension);
}

}  // namespace hotplug::controller::standalone

#include "controller/standalone/read_pool.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "crd/codec.h"

namespace hotplug::controller::standalone {

FileRead ReadInputFile(int dir_fd, const std::string& name) {
  FileRead result;
  result.name = name;
  if (!crd::IsValidUtf8(name) || crd::HasControlCharacters(name)) {
    result.error = "the file name is not UTF-8 text without control characters; rename the file";
    return result;
  }
  try {
    ReadResult read = ReadRegularFile(dir_fd, name, Follow::kBeneath, crd::kMaxDocumentBytes);
    result.status = read.status;
    result.error = std::move(read.error);
    if (read.ok()) result.parsed = ParseInputFile(read.text);
  } catch (const std::exception& e) {  // a library throwing on some input
    result.status = ReadStatus::kError;
    result.error = std::string("unexpected error while reading it: ") + e.what();
    result.parsed = {};
  }
  return result;
}

ReadPool::ReadPool(int dir_fd, int threads) : dir_fd_(dir_fd) {
  done_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

ReadPool::~ReadPool() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : threads_) thread.join();
  if (done_fd_ >= 0) close(done_fd_);
}

void ReadPool::Submit(const std::string& name) {
  {
    MutexLock lock(mu_);
    if (reading_.count(name)) {
      again_.insert(name);
      return;
    }
    if (!queued_.insert(name).second) return;
    queue_.push_back(name);
  }
  wake_.notify_one();
}

std::vector<FileRead> ReadPool::TakeDone() {
  uint64_t count = 0;
  (void)!read(done_fd_, &count, sizeof(count));
  MutexLock lock(mu_);
  std::vector<FileRead> done = std::move(done_);
  done_.clear();
  return done;
}

bool ReadPool::Busy() const {
  MutexLock lock(mu_);
  return !queue_.empty() || !reading_.empty();
}

void ReadPool::Work() {
  pthread_setname_np(pthread_self(), "folder-read");
  MutexLock lock(mu_);
  while (true) {
    lock.Wait(wake_, [this]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::string name = std::move(queue_.front());
    queue_.pop_front();
    queued_.erase(name);
    reading_.insert(name);
    lock.Unlock();
    FileRead result = ReadInputFile(dir_fd_, name);
    lock.Lock();
    reading_.erase(name);
    done_.push_back(std::move(result));
    if (again_.erase(name) && queued_.insert(name).second) {
      queue_.push_back(name);
      wake_.notify_one();
    }
    const uint64_t one = 1;
    (void)!write(done_fd_, &one, sizeof(one));
  }
}

}  // namespace hotplug::controller::standalone

#include "reconciler/hooks.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace hotplug::reconciler {
namespace {

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return "";
  return buf;
}

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Starts `path` in its own process group with exactly `env` (plus PATH); -1 when it cannot.
pid_t Spawn(const std::string& path, const std::map<std::string, std::string>& env) {
  std::vector<std::string> env_strings = {"PATH=/usr/bin:/bin"};
  for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string argv0 = path;
  char* argv[] = {argv0.data(), nullptr};
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so a timeout kills what it started too
    execve(argv0.c_str(), argv, envp.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` at most `timeout` (then kills its group); true when it had to be killed.
bool WaitOrKill(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  int pidfd = PidfdOpen(pid);
  bool timed_out = false;
  if (pidfd >= 0) {
    pollfd pfd{pidfd, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(timeout.count()));
    timed_out = ready == 0;
    close(pidfd);
  }
  if (timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }
  while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
  return timed_out;
}

}  // namespace

HookOutcome RunHook(const std::string& dir, const std::string& name,
                    const std::map<std::string, std::string>& env,
                    std::chrono::milliseconds timeout) {
  HookOutcome outcome;
  if (dir.empty()) return outcome;
  const std::string path = dir + "/" + name;
  if (access(path.c_str(), F_OK) != 0) return outcome;  // no hook: nothing to do
  outcome.ran = true;
  outcome.ok = false;
  const std::string real_dir = RealPath(dir);
  const std::string real_path = RealPath(path);
  if (real_dir.empty() || real_path.rfind(real_dir + "/", 0) != 0) {
    outcome.message = "hook " + path + " resolves outside the hooks folder " + dir + "; refused";
    return outcome;
  }
  if (access(real_path.c_str(), X_OK) != 0) {
    outcome.message = "hook " + path + " is not executable";
    return outcome;
  }
  const pid_t pid = Spawn(real_path, env);
  if (pid < 0) {
    outcome.message = std::string("cannot start hook: ") + std::strerror(errno);
    return outcome;
  }
  int status = 0;
  if (WaitOrKill(pid, timeout, &status)) {
    outcome.message = "hook " + name + " did not finish within " + std::to_string(timeout.count()) +
                      " ms and was killed";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    outcome.ok = true;
  } else if (WIFEXITED(status)) {
    outcome.message = "hook " + name + " exited with code " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    outcome.message = "hook " + name + " was killed by signal " + std::to_string(WTERMSIG(status));
  }
  return outcome;
}

}  // namespace hotplug::reconciler

// Optional executables run around each step (before_set_vcpu, after_set_vcpu,
// before_set_memory, after_set_memory), found in one configured folder, run without a shell,
// told what is happening through environment variables, and killed after a timeout.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace hotplug::reconciler {

struct HookOutcome {
  bool ran = false;  // false: no such hook (not an error)
  bool ok = true;
  std::string message;  // why it failed: exit code, signal, timeout, refused path
};

// Runs `dir`/`name` with exactly `env` as its environment (plus PATH=/usr/bin:/bin).
// A missing hook is fine; a path that resolves outside `dir` (a symlink out) is refused.
HookOutcome RunHook(const std::string& dir, const std::string& name,
                    const std::map<std::string, std::string>& env,
                    std::chrono::milliseconds timeout);

}  // namespace hotplug::reconciler

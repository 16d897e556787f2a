// Waiting in tests without sleeping as synchronisation: poll a condition with a deadline.
// Header-only.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace hotplug::testing {

// Polls `condition` until it holds or `limit` passes (every `interval`: polling, not
// synchronisation); true when it held.
inline bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds limit,
                      std::chrono::milliseconds interval = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(interval);
  }
  return condition();
}

}  // namespace hotplug::testing

#include "controller/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/thread_annotations.h"

namespace hotplug::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
Mutex g_write_mu;  // guards stderr so lines never interleave

// By Level's value: the words --log-level takes and the lines carry.
constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error"};
static_assert(std::size(kLevelNames) == static_cast<size_t>(Level::kError) + 1);

const char* LevelName(Level level) { return kLevelNames[static_cast<size_t>(level)]; }

std::string NowRfc3339Millis() {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis.count()));
  return buf;
}

}  // namespace

bool ParseLevel(std::string_view text, Level* out) {
  for (size_t i = 0; i < std::size(kLevelNames); ++i) {
    if (text == kLevelNames[i]) {
      *out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }

bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(); }

void Write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  nlohmann::json line = {
      {"time", NowRfc3339Millis()}, {"level", LevelName(level)}, {"msg", std::string(message)}};
  for (const auto& [key, value] : fields) line[std::string(key)] = std::string(value);
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  MutexLock lock(g_write_mu);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

}  // namespace hotplug::log

#include "crd/autoscale.h"

#include <string>

namespace hotplug::crd {
namespace {

constexpr int64_t kMaxDurationMs = 24LL * 3600 * 1000;

// The unit at `text[pos]` in milliseconds, advancing `pos`; 0 when there is none.
int64_t ReadUnit(const std::string& text, size_t& pos) {
  if (text.compare(pos, 2, "ms") == 0) return pos += 2, 1;
  switch (text[pos]) {
    case 'h': return ++pos, 3'600'000;
    case 'm': return ++pos, 60'000;
    case 's': return ++pos, 1'000;
    default: return 0;
  }
}

}  // namespace

std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  if (text == "0") return std::chrono::milliseconds{0};
  if (text.empty()) return std::nullopt;
  int64_t total_ms = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int64_t number = 0;
    const size_t digits_start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      number = number * 10 + (text[pos++] - '0');
      if (number > kMaxDurationMs) return std::nullopt;
    }
    if (pos == digits_start || pos == text.size()) return std::nullopt;
    const int64_t unit_ms = ReadUnit(text, pos);
    if (unit_ms == 0) return std::nullopt;
    total_ms += number * unit_ms;
    if (total_ms > kMaxDurationMs) return std::nullopt;
  }
  return std::chrono::milliseconds{total_ms};
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  const int64_t ms = duration.count();
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  int64_t seconds = ms / 1000;
  std::string out;
  if (seconds >= 3600) out += std::to_string(seconds / 3600) + "h", seconds %= 3600;
  if (seconds >= 60) out += std::to_string(seconds / 60) + "m", seconds %= 60;
  if (seconds > 0) out += std::to_string(seconds) + "s";
  return out;
}

}  // namespace hotplug::crd

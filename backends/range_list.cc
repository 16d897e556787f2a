#include "backends/range_list.h"

#include <algorithm>
#include <charconv>

namespace hotplug::backends {
namespace {

constexpr unsigned kMaxRangeIds = 4096;

std::optional<unsigned> ParseId(std::string_view text) {
  unsigned id = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return id;
}

}  // namespace

std::string FormatRangeList(std::vector<unsigned> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(ids[i]);
    if (j > i) out += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return out;
}

std::optional<std::vector<unsigned>> ParseRangeList(std::string_view text) {
  std::vector<unsigned> ids;
  if (text.empty()) return ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = text.substr(start, end - start);
    const size_t dash = item.find('-');
    const std::optional<unsigned> first = ParseId(item.substr(0, dash));
    const std::optional<unsigned> last =
        dash == std::string_view::npos ? first : ParseId(item.substr(dash + 1));
    if (!first || !last || *last < *first || *last - *first >= kMaxRangeIds) return std::nullopt;
    for (unsigned id = *first; id <= *last; ++id) {
      ids.push_back(id);
      if (id == *last) break;  // *last may be UINT_MAX
    }
    start = end + 1;
  }
  return ids;
}

}  // namespace hotplug::backends

#include "reconciler/cpuset.h"

#include <algorithm>

namespace hotplug::reconciler {

std::string FormatRangeList(std::vector<unsigned> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(ids[i]);
    if (j > i) {
      out += '-';
      out += std::to_string(ids[j]);
    }
    i = j + 1;
  }
  return out;
}

}  // namespace hotplug::reconciler

namespace hotplug::reconciler {

std::vector<unsigned> ParseRangeList(const std::string& text) {
  std::vector<unsigned> ids;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    size_t dash = part.find('-');
    try {
      unsigned first = static_cast<unsigned>(std::stoul(part.substr(0, dash)));
      unsigned last = dash == std::string::npos ? first
                                                : static_cast<unsigned>(std::stoul(part.substr(dash + 1)));
      for (unsigned id = first; id <= last && id - first < 4096; ++id) ids.push_back(id);
    } catch (const std::exception&) {
      continue;
    }
  }
  return ids;
}

}  // namespace hotplug::reconciler

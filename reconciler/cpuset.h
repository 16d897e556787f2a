// vCPU id lists as people and the kernel write them: "0-2,5".
#pragma once

#include <string>
#include <vector>

namespace hotplug::reconciler {

// Formats sorted or unsorted ids as a range list; "" for none.
std::string FormatRangeList(std::vector<unsigned> ids);

}  // namespace hotplug::reconciler

namespace hotplug::reconciler {

// Parses "0-2,5" back to ids; ignores anything malformed (the text comes from our own status).
std::vector<unsigned> ParseRangeList(const std::string& text);

}  // namespace hotplug::reconciler

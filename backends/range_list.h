// Id lists as people, libvirt and the kernel write them: "0-2,5". One format for vCPU ids in
// statuses, messages, libvirt cpumaps, the guest's online CPUs and the TCG unplug record.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hotplug::backends {

// Sorted, each id once, runs as ranges; "" for none.
std::string FormatRangeList(std::vector<unsigned> ids);

// The ids of "0-2,5" in the order written, ranges expanded; "" is none. nullopt when the text
// is not such a list or a range is reversed or spans more than 4096 ids.
std::optional<std::vector<unsigned>> ParseRangeList(std::string_view text);

}  // namespace hotplug::backends

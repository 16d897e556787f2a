// libFuzzer target: a watch stream's bytes, split into lines the way the client reads them
// (one JSON event per line, empty lines skipped), each decoded by ParseWatchLine: never a
// crash or an exception, and every line is either an event or an error, never both.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/kube/watch_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hotplug::controller::kube;
  std::string_view stream(reinterpret_cast<const char*>(data), size);
  while (!stream.empty()) {
    size_t end = stream.find('\n');
    std::string_view line = stream.substr(0, end);
    stream = end == std::string_view::npos ? std::string_view() : stream.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    ParsedWatchLine parsed = ParseWatchLine(line);
    if (parsed.event.has_value() == !parsed.error.empty()) std::abort();
    if (parsed.event && parsed.event->object && !parsed.event->decode_error.empty()) std::abort();
  }
  return 0;
}

// One line of a Kubernetes watch stream, decoded: {"type": "ADDED", "object": {...}}. The
// bytes are split into lines by the client (cpprestsdk's read_line); everything above that
// is here, as a pure function that never throws, so it is fuzzed (tests/fuzz/) and tested
// without a server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "crd/elasticvm.h"

namespace hotplug::controller::kube {

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError, kUnknown };
  Type type = Type::kUnknown;
  // object.metadata.resourceVersion when the server sent one (a string), else empty.
  std::string resource_version;
  // kAdded, kModified, kDeleted: the decoded ElasticVM (with spec_error set when only its
  // spec is bad), or why the object could not be decoded at all.
  std::optional<crd::ElasticVM> object;
  std::string decode_error;
  // kError: the metav1.Status the server sent in place of an object.
  int64_t code = 0;
  std::string reason;
  std::string message;
};

// A bounded set of names for metrics and logs ("ADDED", ..., "UNKNOWN"); never the text a
// server sent, so a misbehaving server cannot grow a metric's label set.
const char* WatchEventTypeName(WatchEvent::Type type);

struct ParsedWatchLine {
  std::optional<WatchEvent> event;  // empty when the line is not a watch event
  std::string error;                // why, when it is not
};

// What the informer's cache keeps of an object (tests/bench/memory_bench measures it per
// object): labels and annotations other than hotplug.dev/ ones are dropped, because nothing
// here reads them (the node label is hotplug.dev/node; kubectl's last-applied-configuration
// annotation, which repeats the spec as JSON, was often the largest field) and status writes
// go to the /status subresource, which ignores metadata. Vectors are cut to their size.
void TrimForCache(crd::ElasticVM& object);

// Not JSON, not an object, a "type" that is not a string, or an "object" that is not an
// object: an error (the stream can no longer be trusted; the informer lists again).
ParsedWatchLine ParseWatchLine(std::string_view line);

}  // namespace hotplug::controller::kube

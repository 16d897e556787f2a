#include "controller/kube/watch_event.h"

#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "crd/codec.h"

namespace hotplug::controller::kube {
namespace {

using json = nlohmann::json;

std::string StringField(const json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// By WatchEvent::Type's value: the API's event types, and UNKNOWN for any other.
constexpr const char* kTypeNames[] = {"ADDED",    "MODIFIED", "DELETED",
                                      "BOOKMARK", "ERROR",    "UNKNOWN"};
static_assert(std::size(kTypeNames) == static_cast<size_t>(WatchEvent::Type::kUnknown) + 1);

WatchEvent::Type TypeOf(const std::string& name) {
  for (size_t i = 0; i + 1 < std::size(kTypeNames); ++i) {
    if (name == kTypeNames[i]) return static_cast<WatchEvent::Type>(i);
  }
  return WatchEvent::Type::kUnknown;
}

// Keeps only the hotplug.dev/ entries of a label or annotation map.
void KeepOurs(std::map<std::string, std::string>& entries) {
  std::erase_if(entries,
                [](const auto& entry) { return !entry.first.starts_with("hotplug.dev/"); });
}

ParsedWatchLine Malformed(std::string why) {
  ParsedWatchLine parsed;
  parsed.error = std::move(why);
  return parsed;
}

}  // namespace

void TrimForCache(crd::ElasticVM& object) {
  KeepOurs(object.metadata.labels);
  KeepOurs(object.metadata.annotations);
  object.status.conditions.shrink_to_fit();
  object.status.failures.shrink_to_fit();
}

const char* WatchEventTypeName(WatchEvent::Type type) {
  return kTypeNames[static_cast<size_t>(type)];
}

ParsedWatchLine ParseWatchLine(std::string_view line) {
  json document;
  try {
    // Bad syntax is reported without exceptions; numbers beyond a double's range still throw.
    document = json::parse(line, nullptr, /*allow_exceptions=*/false);
  } catch (const json::exception& e) {
    return Malformed(std::string("not JSON: ") + e.what());
  }
  if (document.is_discarded()) return Malformed("not JSON");
  if (!document.is_object()) return Malformed("not a JSON object");
  auto type = document.find("type");
  if (type == document.end() || !type->is_string()) return Malformed("no \"type\" string");
  auto object = document.find("object");
  if (object == document.end() || !object->is_object()) {
    return Malformed("no \"object\" object in a " + type->get<std::string>().substr(0, 64) +
                     " event");
  }

  WatchEvent event;
  event.type = TypeOf(type->get<std::string>());
  if (auto metadata = object->find("metadata");
      metadata != object->end() && metadata->is_object()) {
    event.resource_version = StringField(*metadata, "resourceVersion");
  }
  switch (event.type) {
    case WatchEvent::Type::kError: {
      event.reason = StringField(*object, "reason");
      event.message = StringField(*object, "message");
      auto code = object->find("code");
      if (code != object->end() && code->is_number_integer()) event.code = code->get<int64_t>();
      break;
    }
    case WatchEvent::Type::kAdded:
    case WatchEvent::Type::kModified:
    case WatchEvent::Type::kDeleted: {
      crd::DecodeResult decoded = crd::DecodeJson(*object);
      if (decoded.ok()) {
        event.object = std::move(decoded.object);
      } else {
        event.decode_error = decoded.error;
      }
      break;
    }
    case WatchEvent::Type::kBookmark:
    case WatchEvent::Type::kUnknown:
      break;
  }
  ParsedWatchLine parsed;
  parsed.event = std::move(event);
  return parsed;
}

}  // namespace hotplug::controller::kube

// How the informer's cache holds an ElasticVM: its JSON (crd/codec.h's encoding, so every
// field the codec knows survives) deflated against a dictionary of a typical ElasticVM, so
// what objects have in common (keys, reasons, messages, timestamps) is stored once per
// process rather than once per object. A cached object is then ~100 bytes instead of ~2 KB
// of C++ strings and vectors; a Get pays an inflate and a decode (tens of microseconds).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "crd/elasticvm.h"

namespace hotplug::controller::kube {

class PackedObject {
 public:
  PackedObject() = default;
  static PackedObject Pack(const crd::ElasticVM& object);
  // An object as the API server served it (a LIST item), without encoding it again: trims
  // `item` as TrimForCache trims a decoded object (and drops its creation time), then packs
  // its text. Unpack decodes it as the informer would have.
  static PackedObject PackServed(nlohmann::json& item);
  // The object Pack was given (spec_error included). nullopt only if the bytes are damaged,
  // which a correct program never sees; it is logged.
  std::optional<crd::ElasticVM> Unpack() const;

  const std::string& resource_version() const { return resource_version_; }
  // Heap bytes held by the packed form (for tests and benchmarks).
  size_t packed_bytes() const { return bytes_.size(); }

 private:
  std::string resource_version_;
  static PackedObject Make(std::string resource_version, std::string text, bool as_served,
                           const std::optional<std::string>& spec_error);
  // [varint header (packed_object.cc)][spec_error][raw deflate of the JSON text, or the text]
  std::string bytes_;
};

// While a LIST answer is parsed (nlohmann's parser callback, one filter per answer): Keep is
// false for a field of an item that PackServed would drop anyway, so the parser does not
// build it: metadata.managedFields, and the labels and annotations not prefixed
// hotplug.dev/. `depth` counts from the item: 1 for its own fields, 2 for metadata's, 3 for
// a label's or an annotation's key.
class ServedFieldFilter {
 public:
  bool Keep(int depth, const std::string& key);

 private:
  std::string item_field_;      // the item's field being read
  std::string metadata_field_;  // within its metadata
};

}  // namespace hotplug::controller::kube

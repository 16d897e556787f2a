#include "controller/kube/packed_object.h"

#include <zlib.h>

#include <iterator>

#include <nlohmann/json.hpp>

#include "controller/log.h"
#include "crd/codec.h"

namespace hotplug::controller::kube {
namespace {

using json = nlohmann::json;

// What PackServed and ServedFieldFilter drop from an object as served: its managedFields,
// and every label and annotation but ours.
constexpr const char* kManagedFields = "managedFields";
bool KeptEntry(std::string_view key) { return key.starts_with("hotplug.dev/"); }

// Raw deflate (no zlib header or checksum: the bytes never leave the process) with an 8 KiB
// window, enough for the dictionary and an object with a full failure history.
constexpr int kWindowBits = -13;
constexpr int kMemLevel = 6;
constexpr int kLevel = 6;

crd::Condition MakeCondition(const char* type, bool ok, const char* reason, std::string message) {
  return {type, ok ? "True" : "False", reason, std::move(message), "2026-01-01T00:00:00Z", 1};
}

// Objects as the operator's own status writes leave them: a converged one last (deflate finds
// the nearest match cheapest), one that is blocked, one that failed a step.
std::string BuildDictionary() {
  crd::ElasticVM converged;
  converged.metadata.name = "vm-00000";
  converged.metadata.namespace_ = "default";
  converged.metadata.uid = "00000000-0000-4000-8000-000000000000";
  converged.metadata.resource_version = "1000000";
  converged.metadata.generation = 1;
  converged.metadata.labels[crd::kNodeLabel] = "node-0";
  converged.spec.node_name = "node-0";
  converged.spec.cpu.vcpus = 2;
  converged.spec.memory.size = crd::Quantity::Parse("2Gi");
  converged.status.observed_generation = 1;
  crd::VcpuStatus& vcpus = converged.status.vcpus.emplace();
  vcpus.desired = vcpus.current = 2;
  vcpus.maximum = 8;
  vcpus.enabled = vcpus.online = "0-1";
  crd::MemoryStatus& memory = converged.status.memory.emplace();
  memory.desired = memory.current = "2Gi";
  memory.maximum = "4Gi";
  memory.method = "virtio-mem";
  converged.status.conditions = {
      MakeCondition("VCPUsSynced", true, "Synced", "2 vCPUs enabled (0-1)"),
      MakeCondition("MemorySynced", true, "Synced", "2Gi of memory by virtio-mem"),
      MakeCondition("Ready", true, "Synced", "every desired resource matches the domain")};

  crd::ElasticVM blocked = converged;
  blocked.spec.cpu.guest_online = crd::GuestOnline::kAgent;
  blocked.spec.memory.method = crd::MemoryMethod::kDimm;
  blocked.status.conditions = {
      MakeCondition("VCPUsSynced", false, "InProgress", "1 of 4 vCPUs enabled"),
      MakeCondition("MemorySynced", false, "InProgress",
                    "memory is 1Gi, desired 2Gi (dimm) balloon"),
      MakeCondition("Ready", false, "DomainNotFound",
                    "domain vm-00000 not found on this host; NoNode NoAgent NodeChanged "
                    "DomainNotRunning HypervisorUnavailable ExceedsMaximum UnplugPending")};
  blocked.status.failures = {{"vcpu", 3, "plug", "PartialFailure",
                              "plugged vcpu 1,2; vcpu 3 failed", "2026-01-01T00:00:00Z"},
                             {"memory", std::nullopt, "attach", "HypervisorError",
                              "unplug detach resize", "2026-01-01T00:00:00Z"}};
  auto text = [](const crd::ElasticVM& object) {
    return crd::EncodeJson(object).dump(-1, ' ', false, json::error_handler_t::replace);
  };
  return text(blocked) + text(converged);
}

const std::string& Dictionary() {
  static const std::string dictionary = BuildDictionary();
  return dictionary;
}

const Bytef* DictionaryBytes() { return reinterpret_cast<const Bytef*>(Dictionary().data()); }

// One deflate and one inflate stream per thread, reset for each object (initialising one
// allocates its window and tables).
struct Streams {
  z_stream deflater{};
  z_stream inflater{};
  bool deflater_ready = false;
  bool inflater_ready = false;
  ~Streams() {
    if (deflater_ready) deflateEnd(&deflater);
    if (inflater_ready) inflateEnd(&inflater);
  }
};

Streams& ThreadStreams() {
  thread_local Streams streams;
  return streams;
}

void AppendVarint(std::string* out, size_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

bool ReadVarint(const std::string& in, size_t* offset, size_t* value) {
  *value = 0;
  for (int shift = 0; *offset < in.size() && shift < 64; shift += 7) {
    auto byte = static_cast<unsigned char>(in[(*offset)++]);
    *value |= static_cast<size_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool Deflate(const std::string& text, std::string* out) {
  Streams& streams = ThreadStreams();
  z_stream& z = streams.deflater;
  if (!streams.deflater_ready) {
    if (deflateInit2(&z, kLevel, Z_DEFLATED, kWindowBits, kMemLevel, Z_DEFAULT_STRATEGY) != Z_OK) {
      return false;
    }
    streams.deflater_ready = true;
  } else if (deflateReset(&z) != Z_OK) {
    return false;
  }
  if (deflateSetDictionary(&z, DictionaryBytes(), static_cast<uInt>(Dictionary().size())) !=
      Z_OK) {
    return false;
  }
  size_t start = out->size();
  out->resize(start + deflateBound(&z, text.size()));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data() + start);
  z.avail_out = static_cast<uInt>(out->size() - start);
  int result = deflate(&z, Z_FINISH);
  out->resize(out->size() - z.avail_out);
  return result == Z_STREAM_END;
}

bool Inflate(const std::string& in, size_t offset, std::string* text) {
  Streams& streams = ThreadStreams();
  z_stream& z = streams.inflater;
  if (!streams.inflater_ready) {
    if (inflateInit2(&z, kWindowBits) != Z_OK) return false;
    streams.inflater_ready = true;
  } else if (inflateReset(&z) != Z_OK) {
    return false;
  }
  if (inflateSetDictionary(&z, DictionaryBytes(), static_cast<uInt>(Dictionary().size())) !=
      Z_OK) {
    return false;
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + offset));
  z.avail_in = static_cast<uInt>(in.size() - offset);
  text->resize(std::max<size_t>(4096, (in.size() - offset) * 16));
  size_t produced = 0;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(text->data() + produced);
    z.avail_out = static_cast<uInt>(text->size() - produced);
    int result = inflate(&z, Z_FINISH);
    produced = text->size() - z.avail_out;
    if (result == Z_STREAM_END) break;
    if ((result != Z_BUF_ERROR && result != Z_OK) || z.avail_in == 0) return false;
    text->resize(text->size() * 2);
  }
  text->resize(produced);
  return true;
}

}  // namespace

// Header bits: 0 = deflated; 1 = the text is the object as served (its decode says whether
// the spec is bad); the rest, for an encoded object, 0 without a spec_error, else its
// length + 1, and the error follows the header.
PackedObject PackedObject::Make(std::string resource_version, std::string text, bool as_served,
                                const std::optional<std::string>& spec_error) {
  PackedObject packed;
  packed.resource_version_ = std::move(resource_version);
  std::string body;
  bool deflated = Deflate(text, &body);
  if (!deflated) {
    // zlib fails only when memory runs out, which the next allocation would die of anyway:
    // keep the text as it is rather than lose the object.
    log::Error("cache: deflate failed; keeping an object uncompressed");
    body = std::move(text);
  }
  size_t marker = spec_error ? spec_error->size() + 1 : 0;
  std::string bytes;
  AppendVarint(&bytes, (marker << 2) | (as_served ? 2 : 0) | (deflated ? 1 : 0));
  if (spec_error) bytes += *spec_error;
  bytes += body;
  packed.bytes_.assign(bytes.data(), bytes.size());  // capacity = size
  return packed;
}

PackedObject PackedObject::Pack(const crd::ElasticVM& object) {
  return Make(object.metadata.resource_version,
              crd::EncodeJson(object).dump(-1, ' ', false, json::error_handler_t::replace),
              false, object.spec_error);
}

bool ServedFieldFilter::Keep(int depth, const std::string& key) {
  if (depth == 1) {
    item_field_ = key;
    return true;
  }
  if (item_field_ != "metadata") return true;
  if (depth == 2) {
    metadata_field_ = key;
    return key != kManagedFields;
  }
  return depth != 3 || (metadata_field_ != "labels" && metadata_field_ != "annotations") ||
         KeptEntry(key);
}

PackedObject PackedObject::PackServed(nlohmann::json& item) {
  std::string resource_version;
  auto metadata = item.find("metadata");
  if (metadata != item.end() && metadata->is_object()) {
    // What the cache keeps (controller/kube/watch_event.h's TrimForCache, and no creation
    // time): the hotplug.dev/ labels and annotations, no managedFields.
    metadata->erase(kManagedFields);
    metadata->erase("creationTimestamp");
    for (const char* field : {"labels", "annotations"}) {
      auto entries = metadata->find(field);
      if (entries == metadata->end() || !entries->is_object()) continue;
      for (auto it = entries->begin(); it != entries->end();) {
        it = KeptEntry(it.key()) ? std::next(it) : entries->erase(it);
      }
      if (entries->empty()) metadata->erase(field);
    }
    auto rv = metadata->find("resourceVersion");
    if (rv != metadata->end() && rv->is_string()) resource_version = rv->get<std::string>();
  }
  return Make(std::move(resource_version),
              item.dump(-1, ' ', false, json::error_handler_t::replace), true, std::nullopt);
}

std::optional<crd::ElasticVM> PackedObject::Unpack() const {
  size_t offset = 0;
  size_t header = 0;
  if (!ReadVarint(bytes_, &offset, &header)) {
    log::Error("cache: a packed object is damaged");
    return std::nullopt;
  }
  const bool deflated = (header & 1) != 0;
  const bool as_served = (header & 2) != 0;
  const size_t marker = header >> 2;
  std::optional<std::string> spec_error;
  if (marker > 0) {
    if (marker - 1 > bytes_.size() - offset) {
      log::Error("cache: a packed object is damaged");
      return std::nullopt;
    }
    spec_error = bytes_.substr(offset, marker - 1);
    offset += marker - 1;
  }
  std::string text;
  if (!deflated) {
    text = bytes_.substr(offset);
  } else if (!Inflate(bytes_, offset, &text)) {
    log::Error("cache: a packed object does not inflate");
    return std::nullopt;
  }
  crd::DecodeResult decoded = crd::DecodeJsonText(text);
  if (!decoded.ok()) {
    log::Error("cache: a packed object does not decode", {{"error", decoded.error}});
    return std::nullopt;
  }
  // The spec the cache encoded decodes without the error that came with it (the bad field
  // is not re-encoded); the error is the object's, as the API server served it.
  if (!as_served) decoded.object->spec_error = std::move(spec_error);
  return std::move(decoded.object);
}

}  // namespace hotplug::controller::kube

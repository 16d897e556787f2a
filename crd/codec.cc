#include "crd/codec.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

namespace hotplug::crd {
namespace {

using nlohmann::json;

// Shows a JSON value in an error message, shortened so a megabyte string stays readable.
std::string Show(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  constexpr size_t kMaxShown = 64;
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

// Reads fields of one JSON object, remembering the first error with its field path.
class FieldReader {
 public:
  FieldReader(const json& object, std::string path, std::string* error)
      : object_(object), path_(std::move(path)), error_(error) {}

  std::string Path(const std::string& field) const {
    return path_.empty() ? field : path_ + "." + field;
  }
  const json* Find(const std::string& field) const {
    if (!object_.is_object()) return nullptr;
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  void Fail(const std::string& field, const std::string& what, const json& got) {
    if (error_->empty()) *error_ = Path(field) + ": " + what + ", got " + Show(got);
  }

  void String(const std::string& field, std::string* out) {
    const json* v = Find(field);
    if (v == nullptr) return;
    if (!v->is_string()) return Fail(field, "expected a string", *v);
    *out = v->get<std::string>();
  }
  void Bool(const std::string& field, bool* out) {
    const json* v = Find(field);
    if (v == nullptr) return;
    if (!v->is_boolean()) return Fail(field, "expected true or false", *v);
    *out = v->get<bool>();
  }
  // An integer; `what` describes the expectation for the error message.
  void Int(const std::string& field, std::optional<int64_t>* out, const std::string& what) {
    const json* v = Find(field);
    if (v == nullptr) return;
    if (v->is_number_integer() && !v->is_number_unsigned()) {
      *out = v->get<int64_t>();
    } else if (v->is_number_unsigned() &&
               v->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      *out = static_cast<int64_t>(v->get<uint64_t>());
    } else {
      Fail(field, what, *v);
    }
  }
  void Int(const std::string& field, int64_t* out, const std::string& what) {
    std::optional<int64_t> value;
    Int(field, &value, what);
    if (value) *out = *value;
  }
  void StringMap(const std::string& field, std::map<std::string, std::string>* out) {
    const json* v = Find(field);
    if (v == nullptr) return;
    if (!v->is_object()) return Fail(field, "expected a map of strings", *v);
    for (const auto& [key, value] : v->items()) {
      if (!value.is_string()) return Fail(field + "." + key, "expected a string", value);
      (*out)[key] = value.get<std::string>();
    }
  }
  // A nested object; returns nullptr (and records an error) when it is not an object.
  const json* Object(const std::string& field) {
    const json* v = Find(field);
    if (v == nullptr) return nullptr;
    if (!v->is_object()) {
      Fail(field, "expected an object", *v);
      return nullptr;
    }
    return v;
  }

 private:
  const json& object_;
  std::string path_;
  std::string* error_;
};

template <typename Enum, size_t N>
void ReadEnum(FieldReader& reader, const std::string& field,
              const std::pair<const char*, Enum> (&table)[N], Enum* out) {
  std::string text;
  reader.String(field, &text);
  if (text.empty()) return;
  for (const auto& [name, value] : table) {
    if (text == name) {
      *out = value;
      return;
    }
  }
  std::string allowed;
  for (const auto& entry : table) allowed += (allowed.empty() ? "" : ", ") + std::string(entry.first);
  reader.Fail(field, "expected one of " + allowed, json(text));
}

constexpr std::pair<const char*, GuestOnline> kGuestOnlineNames[] = {
    {"auto", GuestOnline::kAuto}, {"agent", GuestOnline::kAgent}, {"none", GuestOnline::kNone}};
constexpr std::pair<const char*, MemoryMethod> kMemoryMethodNames[] = {
    {"auto", MemoryMethod::kAuto},
    {"virtio-mem", MemoryMethod::kVirtioMem},
    {"dimm", MemoryMethod::kDimm},
    {"balloon", MemoryMethod::kBalloon}};

void DecodeSpec(const json& doc, ElasticVMSpec* spec, std::string* error) {
  FieldReader reader(doc, "spec", error);
  reader.String("domain", &spec->domain);
  reader.String("nodeName", &spec->node_name);
  reader.Bool("persist", &spec->persist);
  reader.Bool("suspend", &spec->suspend);
  if (const json* cpu = reader.Object("cpu")) {
    FieldReader cpu_reader(*cpu, "spec.cpu", error);
    cpu_reader.Int("vcpus", &spec->cpu.vcpus, "expected an integer >= 1");
    ReadEnum(cpu_reader, "guestOnline", kGuestOnlineNames, &spec->cpu.guest_online);
  }
  if (const json* memory = reader.Object("memory")) {
    FieldReader memory_reader(*memory, "spec.memory", error);
    if (const json* size = memory_reader.Find("size")) {
      std::string text;
      if (size->is_string()) {
        text = size->get<std::string>();
      } else if (size->is_number_integer()) {
        text = size->dump();
      } else {
        memory_reader.Fail("size", "expected a quantity such as 2Gi", *size);
      }
      if (!text.empty() || size->is_string()) {
        std::string why;
        spec->memory.size = Quantity::Parse(text, &why);
        if (!spec->memory.size) memory_reader.Fail("size", why, *size);
      }
    }
    ReadEnum(memory_reader, "method", kMemoryMethodNames, &spec->memory.method);
    memory_reader.Bool("allowShrink", &spec->memory.allow_shrink);
  }
}

void DecodeMetadata(const json& doc, ObjectMeta* meta, std::string* error) {
  FieldReader reader(doc, "metadata", error);
  reader.String("name", &meta->name);
  reader.String("namespace", &meta->namespace_);
  reader.String("uid", &meta->uid);
  reader.String("resourceVersion", &meta->resource_version);
  reader.String("creationTimestamp", &meta->creation_timestamp);
  reader.Int("generation", &meta->generation, "expected an integer");
  reader.StringMap("labels", &meta->labels);
  reader.StringMap("annotations", &meta->annotations);
}

// Converts one YAML node to JSON; `budget` counts nodes so alias bombs stop early.
bool ConvertYaml(const YAML::Node& node, size_t depth, size_t* budget, json* out,
                 std::string* error) {
  if (depth > kMaxDocumentDepth) {
    *error = "document is nested deeper than " + std::to_string(kMaxDocumentDepth) + " levels";
    return false;
  }
  if (*budget == 0) {
    *error = "document has more than " + std::to_string(kMaxDocumentNodes) +
             " nodes (after expanding aliases)";
    return false;
  }
  --*budget;
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      *out = nullptr;
      return true;
    case YAML::NodeType::Sequence: {
      *out = json::array();
      for (const auto& item : node) {
        json child;
        if (!ConvertYaml(item, depth + 1, budget, &child, error)) return false;
        out->push_back(std::move(child));
      }
      return true;
    }
    case YAML::NodeType::Map: {
      *out = json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          *error = "map keys must be plain strings";
          return false;
        }
        const std::string& key = entry.first.Scalar();
        if (out->contains(key)) {
          *error = "duplicate key \"" + key + "\"";
          return false;
        }
        json child;
        if (!ConvertYaml(entry.second, depth + 1, budget, &child, error)) return false;
        (*out)[key] = std::move(child);
      }
      return true;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& text = node.Scalar();
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") {  // quoted or explicitly a string
    *out = text;
    return true;
  }
  // YAML 1.2 core schema for plain scalars.
  static const std::regex kNull("^(null|Null|NULL|~|)$");
  static const std::regex kBool("^(true|True|TRUE|false|False|FALSE)$");
  static const std::regex kInt("^[-+]?[0-9]+$");
  static const std::regex kFloat("^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$");
  if (std::regex_match(text, kNull)) {
    *out = nullptr;
  } else if (std::regex_match(text, kBool)) {
    *out = text[0] == 't' || text[0] == 'T';
  } else if (std::regex_match(text, kInt)) {
    int64_t value = 0;
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), value);
    if (ec == std::errc() && ptr == text.data() + text.size()) {
      *out = value;
    } else {
      uint64_t big = 0;
      auto [uptr, uec] = std::from_chars(begin, text.data() + text.size(), big);
      if (uec == std::errc() && uptr == text.data() + text.size()) {
        *out = big;
      } else {
        *out = std::stod(text);  // beyond 64 bits: keep it as a (rejected later) number
      }
    }
  } else if (text.size() < 64 && std::regex_match(text, kFloat)) {
    *out = std::stod(text);
  } else {
    *out = text;
  }
  return true;
}

json EncodeCondition(const Condition& c) {
  json out = {{"type", c.type},
              {"status", c.status},
              {"reason", c.reason},
              {"message", c.message},
              {"lastTransitionTime", c.last_transition_time}};
  if (c.observed_generation != 0) out["observedGeneration"] = c.observed_generation;
  return out;
}

void EmitYaml(YAML::Emitter& out, const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key << key << YAML::Value;
        EmitYaml(out, item);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : value) EmitYaml(out, item);
      out << YAML::EndSeq;
      break;
    case json::value_t::string: {
      const std::string& text = value.get_ref<const std::string&>();
      // Quote strings that would read back as another type ("True", "123", "").
      size_t budget = 1;
      json reread;
      std::string ignored;
      bool plain_is_string = false;
      try {
        YAML::Node node = YAML::Load(text);
        plain_is_string = ConvertYaml(node, 0, &budget, &reread, &ignored) &&
                          reread.is_string() && reread == value;
      } catch (const YAML::Exception&) {
        plain_is_string = false;
      }
      if (plain_is_string) {
        out << text;
      } else {
        out << YAML::DoubleQuoted << text;
      }
      break;
    }
    case json::value_t::boolean:
      out << value.get<bool>();
      break;
    case json::value_t::number_integer:
      out << value.get<int64_t>();
      break;
    case json::value_t::number_unsigned:
      out << value.get<uint64_t>();
      break;
    case json::value_t::number_float:
      out << value.get<double>();
      break;
    default:
      out << YAML::Null;
  }
}

std::string ToYaml(const json& value) {
  YAML::Emitter out;
  EmitYaml(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace

DecodeResult DecodeJson(const json& doc) {
  DecodeResult result;
  if (!doc.is_object()) {
    result.error = "expected an object, got " + Show(doc);
    return result;
  }
  std::string error;
  FieldReader top(doc, "", &error);
  std::string api_version;
  std::string kind;
  top.String("apiVersion", &api_version);
  top.String("kind", &kind);
  if (error.empty() && !api_version.empty() && api_version != kApiVersion) {
    error = "apiVersion: expected \"hotplug.dev/v1alpha1\", got \"" + api_version + "\"";
  }
  if (error.empty() && !kind.empty() && kind != kKind) {
    error = "kind: expected \"ElasticVM\", got \"" + kind + "\"";
  }
  ElasticVM object;
  const json* metadata = top.Object("metadata");
  if (error.empty() && metadata == nullptr) error = "metadata: required";
  if (error.empty()) DecodeMetadata(*metadata, &object.metadata, &error);
  if (error.empty() && object.metadata.name.empty()) error = "metadata.name: required";
  if (!error.empty()) {
    result.error = std::move(error);
    return result;
  }
  if (object.metadata.namespace_.empty()) object.metadata.namespace_ = "default";

  // From here on the object exists; a bad spec is reported on it, not instead of it.
  std::string spec_error;
  FieldReader spec_top(doc, "", &spec_error);
  const json* spec = spec_top.Object("spec");
  if (spec_error.empty() && spec == nullptr) spec_error = "spec: required";
  if (spec_error.empty()) DecodeSpec(*spec, &object.spec, &spec_error);
  if (spec_error.empty()) spec_error = ValidateSpec(object.spec);
  if (!spec_error.empty()) object.spec_error = std::move(spec_error);

  // The previous status is read best-effort: an unreadable one is simply recomputed.
  if (auto it = doc.find("status"); it != doc.end() && it->is_object()) {
    std::string status_error;
    ElasticVMStatus status;
    if (DecodeStatus(*it, &status, &status_error)) object.status = std::move(status);
  }
  result.object = std::move(object);
  return result;
}

DecodeResult DecodeJsonText(std::string_view text) {
  DecodeResult result;
  if (text.size() > kMaxDocumentBytes) {
    result.error = "document is larger than 4 MiB";
    return result;
  }
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    result.error = "not valid JSON";
    try {
      json ignored = json::parse(text);
      (void)ignored;
    } catch (const json::parse_error& e) {
      result.error = std::string("not valid JSON: ") + e.what();
    }
    return result;
  }
  // Depth check: nlohmann parses deep documents fine, but keep the same limit as YAML.
  return DecodeJson(doc);
}

bool YamlToJson(std::string_view text, json* out, std::string* error) {
  try {
    YAML::Node node = YAML::Load(std::string(text));
    size_t budget = kMaxDocumentNodes;
    return ConvertYaml(node, 0, &budget, out, error);
  } catch (const YAML::Exception& e) {
    *error = std::string("not valid YAML: ") + e.what();
    return false;
  }
}

std::vector<DecodeResult> DecodeYamlText(std::string_view text) {
  std::vector<DecodeResult> results;
  if (text.size() > kMaxDocumentBytes) {
    results.push_back({std::nullopt, "file is larger than 4 MiB"});
    return results;
  }
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    results.push_back({std::nullopt, std::string("not valid YAML: ") + e.what()});
    return results;
  }
  for (size_t i = 0; i < documents.size(); ++i) {
    if (documents[i].IsNull()) continue;  // an empty document between "---" separators
    json doc;
    std::string error;
    size_t budget = kMaxDocumentNodes;
    DecodeResult result;
    if (!ConvertYaml(documents[i], 0, &budget, &doc, &error)) {
      result.error = error;
    } else {
      result = DecodeJson(doc);
    }
    if (!result.ok()) result.error = "document " + std::to_string(i + 1) + ": " + result.error;
    results.push_back(std::move(result));
  }
  return results;
}

std::string ValidateSpec(const ElasticVMSpec& spec) {
  if (spec.cpu.vcpus && *spec.cpu.vcpus > 4096) {
    return "spec.cpu.vcpus: expected an integer from 1 to 4096, got " +
           std::to_string(*spec.cpu.vcpus);
  }
  if (spec.memory.size) {
    const Quantity& size = *spec.memory.size;
    if (size.IsNegative() || size.Value() == 0) {
      return "spec.memory.size: expected a positive quantity such as 2Gi, got \"" +
             size.ToString() + "\"";
    }
    if (!size.IsInteger()) {
      return "spec.memory.size: expected a whole number of bytes, got \"" + size.ToString() +
             "\"";
    }
  }
  if (spec.domain.size() > 256) return "spec.domain: longer than 256 characters";
  return "";
}

bool DecodeStatus(const json& doc, ElasticVMStatus* out, std::string* error) {
  error->clear();
  FieldReader reader(doc, "status", error);
  reader.Int("observedGeneration", &out->observed_generation, "expected an integer");
  if (const json* vcpus = reader.Object("vcpus")) {
    FieldReader r(*vcpus, "status.vcpus", error);
    VcpuStatus v;
    r.Int("desired", &v.desired, "expected an integer");
    r.Int("current", &v.current, "expected an integer");
    r.Int("maximum", &v.maximum, "expected an integer");
    r.String("enabled", &v.enabled);
    r.String("online", &v.online);
    r.Int("qemu", &v.qemu, "expected an integer");
    r.String("pending", &v.pending);
    out->vcpus = v;
  }
  if (const json* memory = reader.Object("memory")) {
    FieldReader r(*memory, "status.memory", error);
    MemoryStatus m;
    for (auto [field, target] : {std::pair{"desired", &m.desired}, {"current", &m.current},
                                 {"maximum", &m.maximum}}) {
      const json* v = r.Find(field);
      if (v == nullptr) continue;
      *target = v->is_string() ? v->get<std::string>() : v->dump();
    }
    r.String("method", &m.method);
    out->memory = m;
  }
  if (const json* conditions = reader.Find("conditions"); conditions && conditions->is_array()) {
    for (const auto& item : *conditions) {
      FieldReader r(item, "status.conditions", error);
      Condition c;
      r.String("type", &c.type);
      r.String("status", &c.status);
      r.String("reason", &c.reason);
      r.String("message", &c.message);
      r.String("lastTransitionTime", &c.last_transition_time);
      r.Int("observedGeneration", &c.observed_generation, "expected an integer");
      if (!c.type.empty()) out->conditions.push_back(std::move(c));
    }
  }
  if (const json* failures = reader.Find("failures"); failures && failures->is_array()) {
    for (const auto& item : *failures) {
      FieldReader r(item, "status.failures", error);
      Failure f;
      r.String("resource", &f.resource);
      r.Int("id", &f.id, "expected an integer");
      r.String("operation", &f.operation);
      r.String("reason", &f.reason);
      r.String("message", &f.message);
      r.String("time", &f.time);
      out->failures.push_back(std::move(f));
    }
  }
  return error->empty();
}

json EncodeStatus(const ElasticVMStatus& status) {
  json out = json::object();
  out["observedGeneration"] = status.observed_generation;
  if (status.vcpus) {
    const VcpuStatus& v = *status.vcpus;
    json vcpus = {{"desired", v.desired}, {"current", v.current}, {"maximum", v.maximum},
                  {"enabled", v.enabled}};
    if (!v.online.empty()) vcpus["online"] = v.online;
    if (v.qemu) vcpus["qemu"] = *v.qemu;
    if (!v.pending.empty()) vcpus["pending"] = v.pending;
    out["vcpus"] = std::move(vcpus);
  }
  if (status.memory) {
    const MemoryStatus& m = *status.memory;
    json memory = json::object();
    if (!m.desired.empty()) memory["desired"] = m.desired;
    if (!m.current.empty()) memory["current"] = m.current;
    if (!m.maximum.empty()) memory["maximum"] = m.maximum;
    if (!m.method.empty()) memory["method"] = m.method;
    out["memory"] = std::move(memory);
  }
  json conditions = json::array();
  for (const auto& c : status.conditions) conditions.push_back(EncodeCondition(c));
  out["conditions"] = std::move(conditions);
  if (!status.failures.empty()) {
    json failures = json::array();
    for (const auto& f : status.failures) {
      json item = {{"resource", f.resource}, {"operation", f.operation}, {"reason", f.reason},
                   {"message", f.message},   {"time", f.time}};
      if (f.id) item["id"] = *f.id;
      failures.push_back(std::move(item));
    }
    out["failures"] = std::move(failures);
  }
  return out;
}

json EncodeJson(const ElasticVM& object) {
  json metadata = {{"name", object.metadata.name}, {"namespace", object.metadata.namespace_}};
  if (!object.metadata.uid.empty()) metadata["uid"] = object.metadata.uid;
  if (!object.metadata.resource_version.empty()) {
    metadata["resourceVersion"] = object.metadata.resource_version;
  }
  if (object.metadata.generation != 0) metadata["generation"] = object.metadata.generation;
  if (!object.metadata.creation_timestamp.empty()) {
    metadata["creationTimestamp"] = object.metadata.creation_timestamp;
  }
  if (!object.metadata.labels.empty()) metadata["labels"] = object.metadata.labels;
  if (!object.metadata.annotations.empty()) metadata["annotations"] = object.metadata.annotations;

  const ElasticVMSpec& s = object.spec;
  json spec = json::object();
  if (!s.domain.empty()) spec["domain"] = s.domain;
  if (!s.node_name.empty()) spec["nodeName"] = s.node_name;
  json cpu = {{"guestOnline", GuestOnlineName(s.cpu.guest_online)}};
  if (s.cpu.vcpus) cpu["vcpus"] = *s.cpu.vcpus;
  spec["cpu"] = std::move(cpu);
  json memory = {{"method", MemoryMethodName(s.memory.method)},
                 {"allowShrink", s.memory.allow_shrink}};
  if (s.memory.size) memory["size"] = s.memory.size->ToString();
  spec["memory"] = std::move(memory);
  spec["persist"] = s.persist;
  spec["suspend"] = s.suspend;

  return {{"apiVersion", kApiVersion},
          {"kind", kKind},
          {"metadata", std::move(metadata)},
          {"spec", std::move(spec)},
          {"status", EncodeStatus(object.status)}};
}

std::string EncodeJsonText(const ElasticVM& object) {
  return EncodeJson(object).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string EncodeYamlText(const ElasticVM& object) { return ToYaml(EncodeJson(object)); }

std::string EncodeStatusYaml(const ElasticVMStatus& status) {
  return ToYaml(EncodeStatus(status));
}

}  // namespace hotplug::crd

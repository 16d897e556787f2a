#include "crd/codec.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
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

bool Utf8IsValid(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4, code = c & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
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
    if (!Utf8IsValid(v->get_ref<const std::string&>())) {
      return Fail(field, "expected UTF-8 text", *v);
    }
    *out = v->get<std::string>();
  }
  // A string that names something (a libvirt domain, a node): also without control
  // characters, which libvirt would cut the name at (NUL) or a log would show wrongly.
  void Name(const std::string& field, std::string* out) {
    std::string text;
    String(field, &text);
    if (HasControlCharacters(text)) {
      return Fail(field, "expected a name without control characters", json(text));
    }
    *out = std::move(text);
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
      if (!Utf8IsValid(key) || !Utf8IsValid(value.get_ref<const std::string&>())) {
        return Fail(field + "." + key, "expected UTF-8 text", value);
      }
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

// An enum field spelled as one of `names` (indexed by the enum's value).
template <typename Enum, size_t N>
void ReadEnum(FieldReader& reader, const std::string& field, const char* const (&names)[N],
              Enum* out) {
  std::string text;
  reader.String(field, &text);
  if (text.empty()) return;
  for (size_t i = 0; i < N; ++i) {
    if (text == names[i]) {
      *out = static_cast<Enum>(i);
      return;
    }
  }
  std::string allowed;
  for (const char* name : names) allowed += (allowed.empty() ? "" : ", ") + std::string(name);
  reader.Fail(field, "expected one of " + allowed, json(text));
}

// --- spec.cpu.autoscale and spec.memory.autoscale

constexpr int64_t kMaxVcpus = 4096;        // the schema's bound on spec.cpu.vcpus
constexpr int64_t kMaxMemorySteps = 1024;  // memory blocks per autoscale decision

// An integer in [low, high]; `required` fails when it is absent.
void ReadBoundedInt(FieldReader& reader, const std::string& field, int64_t low, int64_t high,
                    bool required, int64_t* out) {
  const std::string what =
      "expected an integer from " + std::to_string(low) + " to " + std::to_string(high);
  std::optional<int64_t> value;
  reader.Int(field, &value, what);
  if (!value) {
    if (required && reader.Find(field) == nullptr) reader.Fail(field, what, json(nullptr));
    return;
  }
  if (*value < low || *value > high) return reader.Fail(field, what, json(*value));
  *out = *value;
}

void ReadWindow(FieldReader& reader, const std::string& field, std::chrono::milliseconds* out) {
  const json* v = reader.Find(field);
  if (v == nullptr) return;
  std::optional<std::chrono::milliseconds> window;
  if (v->is_string()) window = ParseDuration(v->get<std::string>());
  if (!window) return reader.Fail(field, "expected a duration such as 30s or 5m, at most 24h", *v);
  *out = *window;
}

void ReadScalingRules(FieldReader& parent, const std::string& field, int64_t max_step,
                      ScalingRules* rules, std::string* error) {
  const json* v = parent.Object(field);
  if (v == nullptr) return;
  FieldReader reader(*v, parent.Path(field), error);
  ReadWindow(reader, "stabilizationWindow", &rules->stabilization_window);
  ReadBoundedInt(reader, "maxStep", 1, max_step, false, &rules->max_step);
}

// `<parent>.autoscale`, when given: its mode, what `read_own` reads (the bounds and targets
// of CPU or of memory, and their cross-checks), then the scaleUp and scaleDown rules, whose
// steps are at most `max_step`.
template <typename Autoscale, typename ReadOwn>
void DecodeAutoscale(FieldReader& parent, int64_t max_step, std::optional<Autoscale>* out,
                     std::string* error, ReadOwn read_own) {
  const json* v = parent.Object("autoscale");
  if (v == nullptr) return;
  FieldReader reader(*v, parent.Path("autoscale"), error);
  Autoscale autoscale;
  ReadEnum(reader, "mode", kAutoscaleModeNames, &autoscale.mode);
  read_own(reader, autoscale);
  ReadScalingRules(reader, "scaleUp", max_step, &autoscale.scale_up, error);
  ReadScalingRules(reader, "scaleDown", max_step, &autoscale.scale_down, error);
  *out = autoscale;
}

void DecodeCpuAutoscale(FieldReader& cpu_reader, CpuSpec* cpu, std::string* error) {
  DecodeAutoscale(
      cpu_reader, kMaxVcpus, &cpu->autoscale, error,
      [error](FieldReader& reader, CpuAutoscale& autoscale) {
        ReadBoundedInt(reader, "minVcpus", 1, kMaxVcpus, false, &autoscale.min_vcpus);
        ReadBoundedInt(reader, "maxVcpus", 1, kMaxVcpus, true, &autoscale.max_vcpus);
        ReadBoundedInt(reader, "targetUtilization", 1, 100, true, &autoscale.target_utilization);
        if (error->empty() && autoscale.min_vcpus > autoscale.max_vcpus) {
          reader.Fail("minVcpus",
                      "expected at most maxVcpus (" + std::to_string(autoscale.max_vcpus) + ")",
                      json(autoscale.min_vcpus));
        }
      });
}

// A whole, positive number of bytes, spelled as a quantity (string or integer).
void ReadByteQuantity(FieldReader& reader, const std::string& field, std::optional<Quantity>* out) {
  const json* v = reader.Find(field);
  if (v == nullptr) return reader.Fail(field, "expected a quantity such as 2Gi", json(nullptr));
  std::string why = "expected a quantity such as 2Gi";
  std::optional<Quantity> quantity;
  if (v->is_string()) quantity = Quantity::Parse(v->get<std::string>(), &why);
  if (v->is_number_integer()) quantity = Quantity::Parse(v->dump(), &why);
  if (quantity && (quantity->IsNegative() || quantity->Value() == 0 || !quantity->IsInteger())) {
    why = "expected a positive whole number of bytes";
    quantity.reset();
  }
  if (!quantity) return reader.Fail(field, why, *v);
  *out = quantity;
}

// "20%" (of the guest's memory) or a quantity ("512Mi").
void ReadMemoryTarget(FieldReader& reader, const std::string& field, MemoryTarget* out) {
  const json* v = reader.Find(field);
  const std::string text = v != nullptr && v->is_string() ? v->get<std::string>() : "";
  if (!text.empty() && text.back() == '%') {
    const bool digits = text.size() >= 2 && text.size() <= 3 &&
                        text.find_first_not_of("0123456789") == text.size() - 1;
    const int64_t percent = digits ? std::stoll(text.substr(0, text.size() - 1)) : 0;
    if (percent >= 1 && percent <= 99) return void(out->percent = percent);
    return reader.Fail(field, "expected a percentage from 1% to 99% or a quantity", *v);
  }
  ReadByteQuantity(reader, field, &out->amount);
}

void DecodeMemoryAutoscale(FieldReader& memory_reader, MemorySpec* memory, std::string* error) {
  DecodeAutoscale(memory_reader, kMaxMemorySteps, &memory->autoscale, error,
                  [error](FieldReader& reader, MemoryAutoscale& autoscale) {
                    ReadByteQuantity(reader, "min", &autoscale.min);
                    ReadByteQuantity(reader, "max", &autoscale.max);
                    ReadMemoryTarget(reader, "targetAvailable", &autoscale.target_available);
                    reader.Bool("allowShrink", &autoscale.allow_shrink);
                    if (error->empty() && *autoscale.max < *autoscale.min) {
                      reader.Fail("min", "expected at most max (" + autoscale.max->ToString() + ")",
                                  json(autoscale.min->ToString()));
                    }
                  });
}

void DecodeSpec(const json& doc, ElasticVMSpec* spec, std::string* error) {
  FieldReader reader(doc, "spec", error);
  reader.Name("domain", &spec->domain);
  reader.Name("nodeName", &spec->node_name);
  reader.Bool("persist", &spec->persist);
  reader.Bool("suspend", &spec->suspend);
  if (const json* cpu = reader.Object("cpu")) {
    FieldReader cpu_reader(*cpu, "spec.cpu", error);
    cpu_reader.Int("vcpus", &spec->cpu.vcpus, "expected an integer >= 1");
    cpu_reader.Int("sockets", &spec->cpu.sockets, "expected an integer >= 1");
    ReadEnum(cpu_reader, "guestOnline", kGuestOnlineNames, &spec->cpu.guest_online);
    if (const json* pinning = cpu_reader.Object("pinning")) {
      FieldReader pin_reader(*pinning, "spec.cpu.pinning", error);
      PinningSpec pins;
      ReadEnum(pin_reader, "policy", kPinningPolicyNames, &pins.policy);
      pin_reader.String("hostCPUs", &pins.host_cpus);
      spec->cpu.pinning = pins;
    }
    DecodeCpuAutoscale(cpu_reader, &spec->cpu, error);
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
    DecodeMemoryAutoscale(memory_reader, &spec->memory, error);
    memory_reader.Int("numaNode", &spec->memory.numa_node, "expected an integer >= 0");
  }
  if (const json* guest = reader.Object("guest")) {
    FieldReader guest_reader(*guest, "spec.guest", error);
    guest_reader.String("os", &spec->guest.os);
  }
}

void DecodeMetadata(const json& doc, ObjectMeta* meta, std::string* error) {
  FieldReader reader(doc, "metadata", error);
  for (auto [field, target] : {std::pair{"name", &meta->name},
                               {"namespace", &meta->namespace_},
                               {"uid", &meta->uid},
                               {"resourceVersion", &meta->resource_version},
                               {"creationTimestamp", &meta->creation_timestamp}}) {
    reader.String(field, target);
  }
  reader.Int("generation", &meta->generation, "expected an integer");
  reader.StringMap("labels", &meta->labels);
  reader.StringMap("annotations", &meta->annotations);
}

// Why a YAML document cannot be converted; thrown inside the event handler only.
struct YamlError {
  std::string message;
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "0-3,6": CPU numbers (up to 4 digits) and ascending ranges, comma-separated, at least one.
bool IsCpuList(const std::string& text) {
  if (text.empty()) return false;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    auto number = [](const std::string& digits) {
      return !digits.empty() && digits.size() <= 4 &&
             std::all_of(digits.begin(), digits.end(), IsDigit);
    };
    const size_t dash = item.find('-');
    const bool ok = dash == std::string::npos
                        ? number(item)
                        : number(item.substr(0, dash)) && number(item.substr(dash + 1)) &&
                              std::stoul(item.substr(0, dash)) <= std::stoul(item.substr(dash + 1));
    if (!ok) return false;
    start = end + 1;
  }
  return true;
}

// Skips digits from `pos`; returns how many there were.
size_t SkipDigits(std::string_view text, size_t& pos) {
  size_t start = pos;
  while (pos < text.size() && IsDigit(text[pos])) ++pos;
  return pos - start;
}

// YAML 1.2 core schema: [-+]?[0-9]+
bool IsYamlInt(std::string_view text) {
  size_t pos = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
  return SkipDigits(text, pos) > 0 && pos == text.size();
}

// YAML 1.2 core schema: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsYamlFloat(std::string_view text) {
  size_t pos = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
  size_t digits = SkipDigits(text, pos);
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t fraction = SkipDigits(text, pos);
    if (digits == 0 && fraction == 0) return false;
  } else if (digits == 0) {
    return false;
  }
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) ++pos;
    if (SkipDigits(text, pos) == 0) return false;
  }
  return pos == text.size();
}

// A number in YAML's float syntax; one beyond a double's range stays text (never throws).
json ParseDouble(const std::string& text) {
  errno = 0;
  const double value = std::strtod(text.c_str(), nullptr);
  if (errno == ERANGE || !std::isfinite(value)) return text;
  return value;
}

// Resolves a plain (unquoted, untagged) scalar by YAML 1.2's core schema.
json ResolvePlainScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text.size() > 64) return text;  // no number is that long
  if (IsYamlInt(text)) {
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    const char* end = text.data() + text.size();
    int64_t value = 0;
    if (auto [ptr, ec] = std::from_chars(begin, end, value); ec == std::errc() && ptr == end) {
      return value;
    }
    uint64_t big = 0;
    if (auto [ptr, ec] = std::from_chars(begin, end, big); ec == std::errc() && ptr == end) {
      return big;
    }
    return ParseDouble(text);  // beyond 64 bits: a number that field checks will reject
  }
  if (IsYamlFloat(text)) return ParseDouble(text);
  return text;
}

// Builds JSON from yaml-cpp's parse events. Working on events rather than YAML::Node keeps
// memory bounded: aliases are expanded against a node budget, and an alias to an anchor
// that is still open (a cycle) is refused instead of building a cyclic graph.
class JsonBuilder final : public YAML::EventHandler {
 public:
  // `file_limited`: the budget is what is left of the file's, not a document's.
  JsonBuilder(size_t budget, bool file_limited)
      : budget_(budget), initial_budget_(budget), file_limited_(file_limited) {}

  bool done() const { return done_; }
  size_t spent() const { return initial_budget_ - budget_; }
  json& result() { return result_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override { done_ = true; }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Add(mark, nullptr, anchor, 1);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      Fail(mark, "an alias refers to an anchor that is not complete (a cycle)");
    }
    Spend(mark, it->second.second);  // before the copy: a bomb fails without being built
    Place(mark, it->second.first, 0, it->second.second);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    // "?" marks a plain scalar, "!" a quoted one, tag:yaml.org,2002:str an explicit string.
    if (tag == "?" && value == "<<" && AwaitingKey()) {
      Fail(mark, "merge keys (<<) are not supported; write the fields out");
    }
    json resolved;
    if (tag == "!" || IsCoreTag(tag, "str")) {
      resolved = value;
    } else if (tag == "?" || tag.empty()) {
      resolved = ResolvePlainScalar(value);
    } else {
      resolved = ResolvePlainScalar(value);
      const bool fits = (IsCoreTag(tag, "int") && resolved.is_number_integer()) ||
                        (IsCoreTag(tag, "float") && resolved.is_number()) ||
                        (IsCoreTag(tag, "bool") && resolved.is_boolean()) ||
                        (IsCoreTag(tag, "null") && resolved.is_null());
      if (!fits) Fail(mark, UnsupportedTag(tag, "a scalar"));
    }
    Add(mark, std::move(resolved), anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    OpenTagged(mark, tag, "seq", "a list", json::array(), anchor);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    OpenTagged(mark, tag, "map", "a map", json::object(), anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    json value;
    YAML::anchor_t anchor;
    size_t nodes;                    // nodes inside, for aliases' budget
    std::optional<std::string> key;  // maps: the key waiting for its value
  };

  // YAML's core tags ("!!str" and the like), as yaml-cpp resolves them.
  static constexpr std::string_view kCoreTagPrefix = "tag:yaml.org,2002:";
  static bool IsCoreTag(const std::string& tag, std::string_view name) {
    return tag.size() == kCoreTagPrefix.size() + name.size() && tag.starts_with(kCoreTagPrefix) &&
           tag.ends_with(name);
  }

  // A list or a map: untagged, or tagged as what it is (`core`).
  void OpenTagged(const YAML::Mark& mark, const std::string& tag, std::string_view core,
                  const char* what, json value, YAML::anchor_t anchor) {
    if (tag != "?" && !tag.empty() && !IsCoreTag(tag, core)) Fail(mark, UnsupportedTag(tag, what));
    Open(mark, std::move(value), anchor);
  }

  static std::string UnsupportedTag(const std::string& tag, const char* what) {
    std::string shown =
        tag.starts_with(kCoreTagPrefix) ? "!!" + tag.substr(kCoreTagPrefix.size()) : tag;
    if (shown.size() > 64) shown = shown.substr(0, 64) + "...";
    return "the tag " + shown + " on " + what + " is not supported (only YAML's own tags are)";
  }
  bool AwaitingKey() const {
    return !stack_.empty() && stack_.back().value.is_object() && !stack_.back().key;
  }
  [[noreturn]] static void Fail(const YAML::Mark& mark, const std::string& what) {
    throw YamlError{what + " at line " + std::to_string(mark.line + 1) + ", column " +
                    std::to_string(mark.column + 1)};
  }
  void Spend(const YAML::Mark& mark, size_t nodes) {
    if (nodes > budget_) {
      Fail(mark, file_limited_ ? "the file has more than " + std::to_string(kMaxFileNodes) +
                                     " nodes in all (after expanding aliases)"
                               : "document has more than " + std::to_string(kMaxDocumentNodes) +
                                     " nodes (after expanding aliases)");
    }
    budget_ -= nodes;
  }
  void Open(const YAML::Mark& mark, json value, YAML::anchor_t anchor) {
    Spend(mark, 1);
    if (stack_.size() >= kMaxDocumentDepth) {
      Fail(mark, "document is nested deeper than " + std::to_string(kMaxDocumentDepth) + " levels");
    }
    if (!stack_.empty() && stack_.back().value.is_object() && !stack_.back().key) {
      Fail(mark, "map keys must be plain strings");
    }
    stack_.push_back({std::move(value), anchor, 1, std::nullopt});
    marks_.push_back(mark);
  }
  void Close() {
    Frame frame = std::move(stack_.back());
    YAML::Mark mark = marks_.back();
    stack_.pop_back();
    marks_.pop_back();
    Place(mark, std::move(frame.value), frame.anchor, frame.nodes);
  }
  void Add(const YAML::Mark& mark, json value, YAML::anchor_t anchor, size_t nodes) {
    Spend(mark, nodes);
    Place(mark, std::move(value), anchor, nodes);
  }
  // Puts a finished value into its parent (or makes it the document).
  void Place(const YAML::Mark& mark, json value, YAML::anchor_t anchor, size_t nodes) {
    if (anchor != 0) {
      // Keeping a copy is work too: an anchor on every node would otherwise cost the square
      // of the document's size.
      Spend(mark, nodes);
      anchors_[anchor] = {value, nodes};
    }
    if (stack_.empty()) {
      result_ = std::move(value);
      return;
    }
    Frame& parent = stack_.back();
    parent.nodes += nodes;
    if (parent.value.is_array()) {
      parent.value.push_back(std::move(value));
    } else if (!parent.key) {
      if (!value.is_string() && !value.is_number() && !value.is_boolean()) {
        Fail(mark, "map keys must be plain strings");
      }
      parent.key = value.is_string() ? value.get<std::string>() : value.dump();
    } else {
      if (parent.value.contains(*parent.key)) {
        Fail(mark, "duplicate key \"" + *parent.key + "\"");
      }
      parent.value[*parent.key] = std::move(value);
      parent.key.reset();
    }
  }

  size_t budget_;
  const size_t initial_budget_;
  const bool file_limited_;
  bool done_ = false;
  json result_;
  std::vector<Frame> stack_;
  std::vector<YAML::Mark> marks_;
  std::map<YAML::anchor_t, std::pair<json, size_t>> anchors_;
};

// Reads the next document of `parser` into `out`. Returns false at the end of the stream.
// Throws YamlError or YAML::Exception on bad input.
// `file_budget` is what the rest of the file may still spend; this document's spending is
// taken from it.
bool NextDocument(YAML::Parser& parser, json* out, size_t* file_budget = nullptr) {
  const size_t budget = file_budget ? std::min(kMaxDocumentNodes, *file_budget) : kMaxDocumentNodes;
  JsonBuilder builder(budget, file_budget && budget < kMaxDocumentNodes);
  if (!parser.HandleNextDocument(builder)) return false;
  if (file_budget) *file_budget -= builder.spent();
  *out = std::move(builder.result());
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

// Whether `text` written as a plain scalar reads back as this string (not "True", "123", "",
// "a: b"). Words, paths and times are decided without a parser; other short text is
// parsed; long text is always quoted (quoting is always right, and parsing it would cost).
bool PlainIsString(const std::string& text) {
  if (text.empty()) return false;
  auto word_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '/' || c == '+';
  };
  const char first = text.front();
  const bool starts_plain = (first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') ||
                            (first >= '0' && first <= '9') || first == '/';
  bool simple = starts_plain && text.back() != ' ' && text.back() != ':';
  for (size_t i = 0; simple && i < text.size(); ++i) {
    const char c = text[i];
    if (word_char(c)) continue;
    if (c == ':' && text[i + 1] != ' ') continue;  // not last: checked above
    if (c == ' ' && text[i + 1] != '#' && text[i + 1] != ' ') continue;
    simple = false;
  }
  if (simple) return ResolvePlainScalar(text).is_string();
  if (text.size() > 4096) return false;
  json reread;
  std::string ignored;
  return YamlToJson(text, &reread, &ignored) && reread.is_string() && reread == text;
}

void EmitYaml(YAML::Emitter& out, const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key;
        // Quoted when plain would read back as something else ("null", "1e3", a merge key).
        if (key == "<<") {
          out << YAML::DoubleQuoted << key;
        } else {
          EmitYaml(out, json(key));
        }
        out << YAML::Value;
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
      if (PlainIsString(text)) {
        out << text;
      } else {
        out << YAML::DoubleQuoted << text;
      }
      break;
    }
    case json::value_t::boolean:
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      out << value.dump();  // JSON's spelling of a number or a bool is YAML's too
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

bool IsValidUtf8(std::string_view text) { return Utf8IsValid(text); }

bool HasControlCharacters(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) return true;
    // C1 controls, U+0080 to U+009F: 0xC2 0x80..0x9F in UTF-8.
    if (c == 0xC2 && i + 1 < text.size()) {
      const auto next = static_cast<unsigned char>(text[i + 1]);
      if (next >= 0x80 && next <= 0x9F) return true;
    }
  }
  return false;
}

DecodeResult DecodeJson(const json& doc) {
  if (!doc.is_object()) {
    return DecodeResult::Failed(DecodeError::kInvalidObject,
                                "expected an object, got " + Show(doc));
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
  if (!error.empty()) return DecodeResult::Failed(DecodeError::kInvalidObject, std::move(error));
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
  DecodeResult result;
  result.object = std::move(object);
  return result;
}

DecodeResult DecodeJsonText(std::string_view text) {
  if (text.size() > kMaxDocumentBytes) {
    return DecodeResult::Failed(DecodeError::kSyntax, "document is larger than 4 MiB");
  }
  json doc;
  try {
    // allow_exceptions=false is not enough: a number too large for a double still throws.
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return DecodeResult::Failed(DecodeError::kSyntax, std::string("not valid JSON: ") + e.what());
  }
  // Depth check: nlohmann parses deep documents fine, but keep the same limit as YAML.
  return DecodeJson(doc);
}

bool YamlToJson(std::string_view text, json* out, std::string* error) {
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    if (!NextDocument(parser, out)) *out = nullptr;
    return true;
  } catch (const YamlError& e) {
    *error = e.message;
  } catch (const YAML::Exception& e) {
    *error = std::string("not valid YAML: ") + e.what();
  }
  return false;
}

std::vector<DecodeResult> DecodeYamlText(std::string_view text) {
  std::vector<DecodeResult> results;
  if (text.size() > kMaxDocumentBytes) {
    results.push_back(DecodeResult::Failed(DecodeError::kSyntax, "file is larger than 4 MiB"));
    return results;
  }
  std::istringstream in{std::string(text)};
  YAML::Parser parser(in);
  size_t file_budget = kMaxFileNodes;
  for (size_t index = 1;; ++index) {
    if (index > kMaxDocuments) {
      // Also the way out of a yaml-cpp state (found by fuzzing) in which the parser returns
      // empty documents forever.
      results.push_back(DecodeResult::Failed(
          DecodeError::kSyntax,
          "more than " + std::to_string(kMaxDocuments) + " documents in one file"));
      break;
    }
    json doc;
    std::string syntax_error;
    try {
      if (!NextDocument(parser, &doc, &file_budget)) break;
    } catch (const YamlError& e) {
      syntax_error = e.message;
    } catch (const YAML::Exception& e) {
      syntax_error = std::string("not valid YAML: ") + e.what();
    }
    if (!syntax_error.empty()) {
      // The parser stopped inside this document and cannot find the next one.
      results.push_back(DecodeResult::Failed(
          DecodeError::kSyntax, "document " + std::to_string(index) + ": " + syntax_error));
      break;
    }
    if (doc.is_null()) continue;  // an empty document between "---" separators
    DecodeResult result = DecodeJson(doc);
    if (!result.ok()) result.error = "document " + std::to_string(index) + ": " + result.error;
    results.push_back(std::move(result));
  }
  return results;
}

std::string ValidateSpec(const ElasticVMSpec& spec) {
  if (spec.cpu.vcpus && *spec.cpu.vcpus > 4096) {
    return "spec.cpu.vcpus: expected an integer from 1 to 4096, got " +
           std::to_string(*spec.cpu.vcpus);
  }
  if (spec.cpu.sockets && (*spec.cpu.sockets < 1 || *spec.cpu.sockets > 4096)) {
    return "spec.cpu.sockets: expected an integer from 1 to 4096, got " +
           std::to_string(*spec.cpu.sockets);
  }
  if (spec.cpu.pinning && spec.cpu.pinning->policy == PinningPolicy::kDealt &&
      !IsCpuList(spec.cpu.pinning->host_cpus)) {
    return "spec.cpu.pinning.hostCPUs: expected host CPUs as a list such as 0-3,6 (the dealt "
           "policy deals from them), got \"" +
           spec.cpu.pinning->host_cpus + "\"";
  }
  if (spec.memory.numa_node && (*spec.memory.numa_node < 0 || *spec.memory.numa_node > 1024)) {
    return "spec.memory.numaNode: expected an integer from 0 to 1024, got " +
           std::to_string(*spec.memory.numa_node);
  }
  if (spec.cpu.vcpus && spec.cpu.sockets) {
    return "spec.cpu: set vcpus or sockets, not both (sockets means sockets x the domain's "
           "cores x threads vCPUs)";
  }
  if (spec.memory.size) {
    const Quantity& size = *spec.memory.size;
    if (size.IsNegative() || size.Value() == 0) {
      return "spec.memory.size: expected a positive quantity such as 2Gi, got \"" +
             size.ToString() + "\"";
    }
    if (!size.IsInteger()) {
      return "spec.memory.size: expected a whole number of bytes, got \"" + size.ToString() + "\"";
    }
  }
  if (spec.domain.size() > 256) return "spec.domain: longer than 256 characters";
  if (spec.guest.os.size() > 256) return "spec.guest.os: longer than 256 characters";
  return "";
}

bool DecodeStatus(const json& doc, ElasticVMStatus* out, std::string* error) {
  error->clear();
  FieldReader reader(doc, "status", error);
  reader.Int("observedGeneration", &out->observed_generation, "expected an integer");
  reader.String("guestOS", &out->guest_os);
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
    r.String("topology", &v.topology);
    r.String("incompleteCores", &v.incomplete_cores);
    r.String("inFlight", &v.in_flight);
    std::map<std::string, std::string> pins;
    r.StringMap("pins", &pins);
    for (const auto& [id, cpus] : pins) {
      int64_t number = 0;
      auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), number);
      if (ec == std::errc() && end == id.data() + id.size()) v.pins[number] = cpus;
    }
    r.Int("recommended", &v.recommended, "expected an integer");
    r.Int("utilization", &v.utilization, "expected an integer");
    out->vcpus = v;
  }
  if (const json* memory = reader.Object("memory")) {
    FieldReader r(*memory, "status.memory", error);
    MemoryStatus m;
    for (auto [field, target] :
         {std::pair{"desired", &m.desired}, {"current", &m.current}, {"maximum", &m.maximum}}) {
      const json* v = r.Find(field);
      if (v == nullptr) continue;
      *target = v->is_string() ? v->get<std::string>() : v->dump();
    }
    r.String("method", &m.method);
    r.String("recommended", &m.recommended);
    r.Int("availablePercent", &m.available_percent, "expected an integer");
    out->memory = m;
  }
  if (const json* numa = reader.Find("numa"); numa && numa->is_array()) {
    for (const auto& item : *numa) {
      FieldReader r(item, "status.numa", error);
      NumaCellStatus cell;
      r.Int("cell", &cell.cell, "expected an integer");
      r.String("cpus", &cell.cpus);
      r.String("vcpus", &cell.vcpus);
      if (const json* memory = r.Find("memory")) {
        cell.memory = memory->is_string() ? memory->get<std::string>() : memory->dump();
      }
      out->numa.push_back(std::move(cell));
    }
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
  if (!status.guest_os.empty()) out["guestOS"] = status.guest_os;
  if (status.vcpus) {
    const VcpuStatus& v = *status.vcpus;
    json vcpus = {{"desired", v.desired},
                  {"current", v.current},
                  {"maximum", v.maximum},
                  {"enabled", v.enabled}};
    if (!v.online.empty()) vcpus["online"] = v.online;
    if (v.qemu) vcpus["qemu"] = *v.qemu;
    if (!v.pending.empty()) vcpus["pending"] = v.pending;
    if (!v.topology.empty()) vcpus["topology"] = v.topology;
    if (!v.incomplete_cores.empty()) vcpus["incompleteCores"] = v.incomplete_cores;
    if (!v.in_flight.empty()) vcpus["inFlight"] = v.in_flight;
    if (!v.pins.empty()) {
      json pins = json::object();
      for (const auto& [id, cpus] : v.pins) pins[std::to_string(id)] = cpus;
      vcpus["pins"] = std::move(pins);
    }
    if (v.recommended) vcpus["recommended"] = *v.recommended;
    if (v.utilization) vcpus["utilization"] = *v.utilization;
    out["vcpus"] = std::move(vcpus);
  }
  if (status.memory) {
    const MemoryStatus& m = *status.memory;
    json memory = json::object();
    if (!m.desired.empty()) memory["desired"] = m.desired;
    if (!m.current.empty()) memory["current"] = m.current;
    if (!m.maximum.empty()) memory["maximum"] = m.maximum;
    if (!m.method.empty()) memory["method"] = m.method;
    if (!m.recommended.empty()) memory["recommended"] = m.recommended;
    if (m.available_percent) memory["availablePercent"] = *m.available_percent;
    out["memory"] = std::move(memory);
  }
  if (!status.numa.empty()) {
    json numa = json::array();
    for (const auto& cell : status.numa) {
      numa.push_back({{"cell", cell.cell},
                      {"cpus", cell.cpus},
                      {"vcpus", cell.vcpus},
                      {"memory", cell.memory}});
    }
    out["numa"] = std::move(numa);
  }
  json conditions = json::array();
  for (const auto& c : status.conditions) conditions.push_back(EncodeCondition(c));
  out["conditions"] = std::move(conditions);
  if (!status.failures.empty()) {
    json failures = json::array();
    for (const auto& f : status.failures) {
      json item = {{"resource", f.resource},
                   {"operation", f.operation},
                   {"reason", f.reason},
                   {"message", f.message},
                   {"time", f.time}};
      if (f.id) item["id"] = *f.id;
      failures.push_back(std::move(item));
    }
    out["failures"] = std::move(failures);
  }
  return out;
}

namespace {

json EncodeScalingRules(const ScalingRules& rules) {
  return {{"stabilizationWindow", FormatDuration(rules.stabilization_window)},
          {"maxStep", rules.max_step}};
}

json EncodeCpuAutoscale(const CpuAutoscale& a) {
  return {{"mode", AutoscaleModeName(a.mode)},
          {"minVcpus", a.min_vcpus},
          {"maxVcpus", a.max_vcpus},
          {"targetUtilization", a.target_utilization},
          {"scaleUp", EncodeScalingRules(a.scale_up)},
          {"scaleDown", EncodeScalingRules(a.scale_down)}};
}

json EncodeMemoryAutoscale(const MemoryAutoscale& a) {
  json out = {{"mode", AutoscaleModeName(a.mode)},
              {"allowShrink", a.allow_shrink},
              {"scaleUp", EncodeScalingRules(a.scale_up)},
              {"scaleDown", EncodeScalingRules(a.scale_down)}};
  if (a.min) out["min"] = a.min->ToString();
  if (a.max) out["max"] = a.max->ToString();
  const MemoryTarget& t = a.target_available;
  if (t.percent) out["targetAvailable"] = std::to_string(*t.percent) + "%";
  if (t.amount) out["targetAvailable"] = t.amount->ToString();
  return out;
}

}  // namespace

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
  if (s.cpu.sockets) cpu["sockets"] = *s.cpu.sockets;
  if (s.cpu.pinning) {
    json pinning = {{"policy", kPinningPolicyNames[static_cast<size_t>(s.cpu.pinning->policy)]}};
    if (!s.cpu.pinning->host_cpus.empty()) pinning["hostCPUs"] = s.cpu.pinning->host_cpus;
    cpu["pinning"] = std::move(pinning);
  }
  if (s.cpu.autoscale) cpu["autoscale"] = EncodeCpuAutoscale(*s.cpu.autoscale);
  spec["cpu"] = std::move(cpu);
  json memory = {{"method", MemoryMethodName(s.memory.method)},
                 {"allowShrink", s.memory.allow_shrink}};
  if (s.memory.size) memory["size"] = s.memory.size->ToString();
  if (s.memory.numa_node) memory["numaNode"] = *s.memory.numa_node;
  if (s.memory.autoscale) memory["autoscale"] = EncodeMemoryAutoscale(*s.memory.autoscale);
  spec["memory"] = std::move(memory);
  if (!s.guest.os.empty()) spec["guest"] = {{"os", s.guest.os}};
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

std::string EncodeStatusYaml(const ElasticVMStatus& status) { return ToYaml(EncodeStatus(status)); }

}  // namespace hotplug::crd

// ElasticVM to and from JSON (what the API server speaks) and YAML (what users write and
// standalone mode reads). Decoding never throws: bad input comes back as an error naming
// the field path and the value, e.g. `spec.cpu.vcpus: expected an integer >= 1, got "four"`.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "crd/elasticvm.h"

namespace hotplug::crd {

// What kind of input failed to decode; callers decide by the kind, never by the wording.
enum class DecodeError {
  kNone,
  // The text cannot be read from here on (not YAML/JSON, a duplicate key, a limit hit): this
  // document and any after it in the same text are lost.
  kSyntax,
  // The document was read, but it is not a usable ElasticVM (wrong kind, no name, ...):
  // only this document is lost.
  kInvalidObject,
};

// A decoded object, or why there is none. An object whose metadata is fine but whose spec
// is not is still returned, with `spec_error` set, so it can be reported as InvalidSpec.
struct DecodeResult {
  std::optional<ElasticVM> object;
  DecodeError kind = DecodeError::kNone;  // set when object is nullopt
  std::string error;                      // set when object is nullopt
  bool ok() const { return object.has_value(); }

  static DecodeResult Failed(DecodeError kind, std::string error) {
    return {std::nullopt, kind, std::move(error)};
  }
};

// Limits that keep hostile input (YAML alias bombs, deep nesting) from costing much.
inline constexpr size_t kMaxDocumentNodes = 100'000;
inline constexpr size_t kMaxDocumentDepth = 64;
inline constexpr size_t kMaxDocumentBytes = 4 * 1024 * 1024;
inline constexpr size_t kMaxDocuments = 1000;  // per YAML file
// All the documents of one YAML file together (aliases expanded): bounds a file's work.
inline constexpr size_t kMaxFileNodes = 250'000;

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF).
bool IsValidUtf8(std::string_view text);
// True when `text` holds a C0 or C1 control character or DEL (NUL included).
bool HasControlCharacters(std::string_view text);

DecodeResult DecodeJsonText(std::string_view text);
DecodeResult DecodeJson(const nlohmann::json& doc);

// Every document of a (multi-document) YAML text; each either an object or an error that
// says which document failed and why.
std::vector<DecodeResult> DecodeYamlText(std::string_view text);

// Converts YAML text (one document) to JSON, respecting the limits above. What the
// converter does not implement is an error naming its line, never silently dropped: merge
// keys (<<), tags other than YAML's own (!!str, !!int, !!float, !!bool, !!null, !!map,
// !!seq). Anchored values count against the node limit each time they are stored or
// repeated, so the work of a document is bounded by it.
// Returns false and sets `error` on failure.
bool YamlToJson(std::string_view text, nlohmann::json* out, std::string* error);

// Validates what the schema cannot (and what a raw object that bypassed it may violate).
// Returns an empty string when the spec is fine.
std::string ValidateSpec(const ElasticVMSpec& spec);

nlohmann::json EncodeJson(const ElasticVM& object);
nlohmann::json EncodeStatus(const ElasticVMStatus& status);
std::string EncodeJsonText(const ElasticVM& object);
std::string EncodeYamlText(const ElasticVM& object);
std::string EncodeStatusYaml(const ElasticVMStatus& status);

// Decodes a status object (from JSON); errors are reported like DecodeJson's.
bool DecodeStatus(const nlohmann::json& doc, ElasticVMStatus* out, std::string* error);

}  // namespace hotplug::crd

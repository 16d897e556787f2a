#include "controller/standalone/input_file.h"

#include "controller/standalone/status_dir.h"
#include "crd/codec.h"

namespace hotplug::controller::standalone {

ParsedInputFile ParseInputFile(std::string_view text) {
  ParsedInputFile parsed;
  std::vector<crd::DecodeResult> results = crd::DecodeYamlText(text);
  for (size_t i = 0; i < results.size(); ++i) {
    const int index = static_cast<int>(i) + 1;
    if (!results[i].ok()) {
      // A syntax error ends what can be read of the file; other errors are one document's.
      if (results[i].kind == crd::DecodeError::kSyntax) {
        parsed.syntax_error = std::move(results[i].error);
        break;
      }
      parsed.errors.push_back(std::move(results[i].error));
      continue;
    }
    crd::ElasticVM object = std::move(*results[i].object);
    const std::string where = "document " + std::to_string(index) + ": ";
    if (!IsValidNamespace(object.metadata.namespace_)) {
      parsed.errors.push_back(where + "metadata.namespace \"" + object.metadata.namespace_ +
                              "\" is not a valid namespace (lowercase letters, digits and '-', "
                              "at most 63 characters)");
      continue;
    }
    if (!IsValidName(object.metadata.name)) {
      parsed.errors.push_back(where + "metadata.name \"" + object.metadata.name +
                              "\" is not a valid name (lowercase letters, digits, '-' and '.', "
                              "at most 253 characters)");
      continue;
    }
    // What Kubernetes would own is the source's to set; a status in the file is ignored, and
    // so are the operator's own annotations (each must mean what the operator meant).
    object.metadata.uid.clear();
    object.metadata.resource_version.clear();
    object.metadata.generation = 0;
    object.metadata.creation_timestamp.clear();
    object.status = {};
    auto& annotations = object.metadata.annotations;
    for (auto it = annotations.begin(); it != annotations.end();) {
      if (!IsOperatorAnnotation(it->first)) {
        ++it;
        continue;
      }
      parsed.errors.push_back(where + "metadata.annotations[\"" + it->first +
                              "\"] is the operator's own annotation; the file's value is ignored");
      it = annotations.erase(it);
    }
    parsed.documents.push_back({index, std::move(object)});
  }
  return parsed;
}

}  // namespace hotplug::controller::standalone

// libFuzzer target: the folder scanner's parse of one input file (standalone mode) never
// crashes, and what it keeps is what the folder source may use: documents in file order with
// a valid namespace and name, none of the operator's own annotations, no owned metadata.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/standalone/input_file.h"
#include "controller/standalone/status_dir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hotplug::controller::standalone;
  ParsedInputFile parsed =
      ParseInputFile(std::string_view(reinterpret_cast<const char*>(data), size));
  int last = 0;
  for (const auto& document : parsed.documents) {
    const auto& meta = document.object.metadata;
    if (document.index <= last) std::abort();
    last = document.index;
    if (!IsValidNamespace(meta.namespace_) || !IsValidName(meta.name)) std::abort();
    if (!meta.uid.empty() || meta.generation != 0 || !meta.creation_timestamp.empty()) std::abort();
    for (const auto& [key, value] : meta.annotations) {
      if (IsOperatorAnnotation(key)) std::abort();
    }
  }
  for (const auto& error : parsed.errors) {
    if (error.empty()) std::abort();
  }
  return 0;
}

// libFuzzer target: multi-document YAML never crashes the decoder and every document gets
// an object or an error.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crd/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& result : hotplug::crd::DecodeYamlText(text)) {
    if (!result.ok() && result.error.empty()) std::abort();
    if (result.ok()) (void)hotplug::crd::EncodeYamlText(*result.object);
  }
  return 0;
}

// libFuzzer target: decoding arbitrary JSON as an ElasticVM never crashes, and a decoded
// object encodes to JSON that decodes to the same object.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crd/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = hotplug::crd::DecodeJsonText(text);
  if (!result.ok() || result.object->spec_error) return 0;
  std::string encoded = hotplug::crd::EncodeJsonText(*result.object);
  auto again = hotplug::crd::DecodeJsonText(encoded);
  if (!again.ok() || hotplug::crd::EncodeJsonText(*again.object) != encoded) std::abort();
  return 0;
}

// libFuzzer target: the status-file reader of standalone mode never crashes, and whatever it
// reads, written again, reads back as the same object (what StatusDir::WriteObject relies on:
// a restart finds what was written).
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "controller/standalone/status_dir.h"
#include "crd/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hotplug;
  std::string error;
  std::optional<crd::ElasticVM> object = controller::standalone::DecodeStatusFile(
      std::string_view(reinterpret_cast<const char*>(data), size), &error);
  if (!object) {
    if (error.empty()) std::abort();
    return 0;
  }
  object->metadata.annotations.erase(controller::standalone::kSpecErrorAnnotation);
  object->spec_error.reset();
  const std::string text = crd::EncodeYamlText(*object);
  std::optional<crd::ElasticVM> again = controller::standalone::DecodeStatusFile(text, &error);
  if (!again || crd::EncodeJson(*again) != crd::EncodeJson(*object)) std::abort();
  return 0;
}

// libFuzzer target: Quantity::Parse never crashes, and what it accepts formats to text that
// parses back to the same amount.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crd/quantity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto q = hotplug::crd::Quantity::Parse(text, &error);
  if (!q) return 0;
  auto again = hotplug::crd::Quantity::Parse(q->ToString(), &error);
  if (!again || !(*again == *q)) std::abort();
  (void)q->Value();
  return 0;
}

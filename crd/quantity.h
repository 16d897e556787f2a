// Kubernetes resource quantities ("2Gi", "1536Mi", "1.5", "500m", "1e9"), parsed and
// formatted the way k8s.io/apimachinery/pkg/api/resource does: exact to the nano-unit,
// canonical output in the format (binary SI, decimal SI, decimal exponent) of the input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hotplug::crd {

class Quantity {
 public:
  enum class Format { kDecimalSI, kBinarySI, kDecimalExponent };

  Quantity() = default;
  // An integral amount (bytes, count) in the given format.
  static Quantity FromInt(int64_t value, Format format = Format::kBinarySI);

  // Parses `text`; on failure returns nullopt and, when `error` is given, says why.
  static std::optional<Quantity> Parse(std::string_view text, std::string* error = nullptr);

  // The value rounded up to an integer, as resource.Quantity.Value() does. Saturates at
  // INT64_MAX / INT64_MIN.
  int64_t Value() const;
  // True when the amount is a whole number.
  bool IsInteger() const;
  bool IsNegative() const { return nanos_ < 0; }
  Format format() const { return format_; }

  // Canonical text, e.g. "1536Mi", "1500m", "2k", "1e3".
  std::string ToString() const;

  friend bool operator==(const Quantity& a, const Quantity& b) { return a.nanos_ == b.nanos_; }
  friend bool operator<(const Quantity& a, const Quantity& b) { return a.nanos_ < b.nanos_; }

 private:
  __int128 nanos_ = 0;  // the amount in units of 1e-9
  Format format_ = Format::kDecimalSI;
};

// Formats a byte count the way the status shows memory ("1536Mi", "2Gi", "100").
std::string FormatBytes(uint64_t bytes);

}  // namespace hotplug::crd

// libvirt's numeric codes (states, job operations, error numbers) mapped to this backend's
// enums by table: one row per code, one lookup for every table.
#pragma once

#include <cstddef>

namespace hotplug::backends::libvirt {

template <typename T>
struct CodeMapping {
  int code;
  T value;
};

// The value `code` maps to in `table`, or `otherwise`.
template <typename T, size_t N>
constexpr T MapCode(const CodeMapping<T> (&table)[N], int code, T otherwise) {
  for (const CodeMapping<T>& row : table) {
    if (row.code == code) return row.value;
  }
  return otherwise;
}

}  // namespace hotplug::backends::libvirt

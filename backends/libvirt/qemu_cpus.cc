#include "backends/libvirt/qemu_cpus.h"

#include <nlohmann/json.hpp>

#include <string>

namespace hotplug::backends::libvirt {
namespace {

Status Unexpected(std::string_view reply, const std::string& why) {
  return Status::Error(ErrorCode::kInternal, "query-cpus-fast: " + why + ": " +
                                                 std::string(reply.substr(0, 200)));
}

}  // namespace

Result<std::set<unsigned>> ParseQueryCpusFast(std::string_view reply) {
  nlohmann::json document;
  try {
    // No exceptions for bad syntax; numbers beyond a double's range still throw.
    document = nlohmann::json::parse(reply, nullptr, /*allow_exceptions=*/false);
  } catch (const nlohmann::json::exception&) {
    return Unexpected(reply, "not JSON");
  }
  if (document.is_discarded() || !document.is_object()) return Unexpected(reply, "not JSON");
  if (auto error = document.find("error"); error != document.end()) {
    std::string description;
    if (error->is_object()) {
      auto desc = error->find("desc");
      if (desc != error->end() && desc->is_string()) description = desc->get<std::string>();
    }
    return Status::Error(ErrorCode::kInternal,
                         "query-cpus-fast failed: " +
                             (description.empty() ? std::string(reply.substr(0, 200)) : description));
  }
  auto cpus = document.find("return");
  if (cpus == document.end() || !cpus->is_array()) return Unexpected(reply, "no \"return\" list");
  std::set<unsigned> indexes;
  for (const auto& cpu : *cpus) {
    auto index = cpu.is_object() ? cpu.find("cpu-index") : cpu.end();
    if (!cpu.is_object() || index == cpu.end() || !index->is_number_unsigned() ||
        index->get<uint64_t>() > UINT32_MAX) {
      return Unexpected(reply, "a CPU without an unsigned \"cpu-index\"");
    }
    indexes.insert(static_cast<unsigned>(index->get<uint64_t>()));
  }
  return indexes;
}

}  // namespace hotplug::backends::libvirt

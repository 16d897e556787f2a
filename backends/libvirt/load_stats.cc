#include "backends/libvirt/load_stats.h"

#include <libvirt/virterror.h>

#include <charconv>
#include <map>

#include "backends/libvirt/errors.h"

namespace hotplug::backends::libvirt {
namespace {

// The thread's last libvirt error as a Status, and forgotten.
Status TakeError(const std::string& what) {
  Status status = StatusFromLastError(what);
  virResetLastError();
  return status;
}

// "vcpu.12.time" -> {12, "time"}; false for other keys ("vcpu.current", ...).
bool SplitVcpuKey(const std::string& key, unsigned* id, std::string* field) {
  constexpr std::string_view kPrefix = "vcpu.";
  if (key.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  const char* begin = key.data() + kPrefix.size();
  const char* end = key.data() + key.size();
  auto [next, error] = std::from_chars(begin, end, *id);
  if (error != std::errc() || next == begin || next == end || *next != '.') return false;
  *field = std::string(next + 1, end);
  return true;
}

struct VcpuFields {
  std::optional<uint64_t> state, time, wait, delay;
};

// The typed parameters of one stats record as (key, value) pairs, integers only.
std::vector<std::pair<std::string, uint64_t>> IntegerParams(const virDomainStatsRecord& record) {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (int i = 0; i < record.nparams; ++i) {
    const virTypedParameter& p = record.params[i];
    switch (p.type) {
      case VIR_TYPED_PARAM_INT: out.emplace_back(p.field, static_cast<uint64_t>(p.value.i)); break;
      case VIR_TYPED_PARAM_UINT: out.emplace_back(p.field, p.value.ui); break;
      case VIR_TYPED_PARAM_LLONG:
        out.emplace_back(p.field, static_cast<uint64_t>(p.value.l));
        break;
      case VIR_TYPED_PARAM_ULLONG: out.emplace_back(p.field, p.value.ul); break;
      default: break;
    }
  }
  return out;
}

Result<std::vector<VcpuTime>> ReadVcpuTimes(virDomainPtr domain, const std::string& name) {
  virDomainPtr domains[] = {domain, nullptr};
  virDomainStatsRecordPtr* records = nullptr;
  const int count = virDomainListGetStats(domains, VIR_DOMAIN_STATS_VCPU, &records, 0);
  if (count < 0) return TakeError("virDomainListGetStats(" + name + ", vcpu)");
  std::vector<VcpuTime> vcpus;
  if (count > 0) vcpus = ParseVcpuStats(IntegerParams(*records[0]));
  virDomainStatsRecordListFree(records);
  return vcpus;
}

// Reads the balloon's stats; turns their period on when they say nothing yet.
Result<LoadSample> ReadMemory(virDomainPtr domain, const std::string& name, LoadSample sample) {
  virDomainMemoryStatStruct raw[VIR_DOMAIN_MEMORY_STAT_NR];
  const int count = virDomainMemoryStats(domain, raw, VIR_DOMAIN_MEMORY_STAT_NR, 0);
  if (count < 0) return TakeError("virDomainMemoryStats(" + name + ")");
  std::vector<std::pair<int, uint64_t>> stats;
  for (int i = 0; i < count; ++i) stats.emplace_back(raw[i].tag, raw[i].val);
  sample.memory = ParseMemoryStats(stats);
  if (!sample.memory) {
    // No "available"/"usable": the period is 0 (or no balloon). A failure here only means
    // there will be no memory numbers; the vCPU numbers stand.
    sample.stats_period_set = virDomainSetMemoryStatsPeriod(domain, kMemoryStatsPeriodSeconds,
                                                            VIR_DOMAIN_AFFECT_LIVE) == 0;
    if (!sample.stats_period_set) virResetLastError();
  }
  return sample;
}

}  // namespace

std::vector<VcpuTime> ParseVcpuStats(const std::vector<std::pair<std::string, uint64_t>>& params) {
  std::map<unsigned, VcpuFields> by_id;
  for (const auto& [key, value] : params) {
    unsigned id = 0;
    std::string field;
    if (!SplitVcpuKey(key, &id, &field)) continue;
    if (field == "state") by_id[id].state = value;
    if (field == "time") by_id[id].time = value;
    if (field == "wait") by_id[id].wait = value;
    if (field == "delay") by_id[id].delay = value;
  }
  std::vector<VcpuTime> out;
  for (const auto& [id, fields] : by_id) {
    // VIR_VCPU_RUNNING; an offline slot has no thread and no time.
    if (fields.state.value_or(0) != VIR_VCPU_RUNNING || !fields.time) continue;
    // "delay" (libvirt >= 9.0, the run-queue delay from schedstat, which the guest sees as
    // steal time) is always there; "wait" needs the host's schedstats turned on.
    out.push_back({id, *fields.time, fields.delay.value_or(fields.wait.value_or(0))});
  }
  return out;
}

std::optional<MemoryLoad> ParseMemoryStats(const std::vector<std::pair<int, uint64_t>>& stats) {
  MemoryLoad load;
  for (const auto& [tag, kib] : stats) {
    const uint64_t bytes = kib * 1024;
    switch (tag) {
      case VIR_DOMAIN_MEMORY_STAT_AVAILABLE: load.available_bytes = bytes; break;
      case VIR_DOMAIN_MEMORY_STAT_USABLE: load.usable_bytes = bytes; break;
      case VIR_DOMAIN_MEMORY_STAT_UNUSED: load.unused_bytes = bytes; break;
      case VIR_DOMAIN_MEMORY_STAT_DISK_CACHES: load.disk_caches_bytes = bytes; break;
      case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON: load.balloon_bytes = bytes; break;
      default: break;
    }
  }
  if (!load.available_bytes && !load.usable_bytes) return std::nullopt;
  return load;
}

Result<LoadSample> ReadDomainLoad(virDomainPtr domain, const std::string& name) {
  Result<std::vector<VcpuTime>> vcpus = ReadVcpuTimes(domain, name);
  if (!vcpus.ok()) return vcpus.status();
  LoadSample sample;
  sample.vcpus = std::move(vcpus.value());
  return ReadMemory(domain, name, std::move(sample));
}

}  // namespace hotplug::backends::libvirt

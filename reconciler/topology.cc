#include "reconciler/topology.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <string_view>

#include "backends/range_list.h"

namespace hotplug::reconciler {

CpuTopology::CpuTopology(const backends::DomainObservation& domain)
    : maximum_(domain.maximum_vcpus) {
  const backends::Topology& t = domain.topology;
  given_ = t.sockets > 0 || t.cores > 0 || t.threads > 0;
  if (!given_) return;
  // libvirt writes all of them; an attribute that is missing counts as 1 (sockets: the rest).
  dies_ = std::max(1u, t.dies);
  cores_ = std::max(1u, t.cores);
  threads_ = std::max(1u, t.threads);
  vcpus_per_socket_ = dies_ * cores_ * threads_;
  sockets_ = t.sockets > 0 ? t.sockets : std::max(1u, maximum_ / vcpus_per_socket_);
}

std::vector<unsigned> CpuTopology::ThreadsOf(unsigned core) const {
  std::vector<unsigned> ids;
  for (unsigned id = core * threads_; id < (core + 1) * threads_ && id < maximum_; ++id) {
    ids.push_back(id);
  }
  return ids;
}

std::string CpuTopology::Describe() const {
  if (!given_) return "";
  auto count = [](unsigned n, const char* what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  std::string text = count(sockets_, "socket");
  if (dies_ > 1) text += " x " + count(dies_, "die");
  return text + " x " + count(cores_, "core") + " x " + count(threads_, "thread");
}

unsigned ThreadsPerCoreDescribed(const std::string& described) {
  // Describe()'s last part is " x <n> thread" or " x <n> threads".
  const size_t by = described.rfind(" x ");
  if (by == std::string::npos) return 1;
  const char* first = described.data() + by + 3;
  const char* last = described.data() + described.size();
  unsigned threads = 0;
  const auto [end, error] = std::from_chars(first, last, threads);
  const std::string_view unit(end, static_cast<size_t>(last - end));
  if (error != std::errc{} || threads == 0 || (unit != " thread" && unit != " threads")) return 1;
  return threads;
}

std::string CpuTopology::NameCore(unsigned core) const {
  return "core " + std::to_string(core) + " (vCPU " + backends::FormatRangeList(ThreadsOf(core)) +
         ")";
}

std::vector<unsigned> IncompleteCores(const CpuTopology& topology,
                                      const std::vector<unsigned>& effective) {
  std::map<unsigned, unsigned> present;  // core -> effective threads
  for (unsigned id : effective) present[topology.CoreOf(id)]++;
  std::vector<unsigned> ids;
  for (const auto& [core, threads] : present) {
    const std::vector<unsigned> all = topology.ThreadsOf(core);
    if (threads < all.size()) ids.insert(ids.end(), all.begin(), all.end());
  }
  return ids;
}

}  // namespace hotplug::reconciler

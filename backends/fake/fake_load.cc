// The fake hypervisor's scriptable guest load: busy time accrues per running vCPU at the
// scripted rate, by an injectable clock, so tests see what libvirt's vCPU stats would show.
#include <algorithm>

#include "backends/fake/fake_hypervisor.h"

namespace hotplug::backends::fake {

void FakeHypervisor::SetLoadClock(std::function<std::chrono::steady_clock::time_point()> now) {
  MutexLock lock(mu_);
  load_clock_ = std::move(now);
  for (auto& [name, domain] : domains_) domain.load_since = load_clock_();
}

void FakeHypervisor::SetLoad(const std::string& name, double busy_cpus) {
  MutexLock lock(mu_);
  Domain* d = FindLocked(name);
  if (d == nullptr) return;
  AccrueLoadLocked(*d);
  d->load_cpus = std::max(0.0, busy_cpus);
}

void FakeHypervisor::SetMemoryLoad(const std::string& name, std::optional<MemoryLoad> memory) {
  MutexLock lock(mu_);
  if (Domain* d = FindLocked(name)) d->memory_load = memory;
}

// Adds the busy time since the last accrual to the vCPUs running now.
void FakeHypervisor::AccrueLoadLocked(Domain& d) {
  const auto now = load_clock_ ? load_clock_() : std::chrono::steady_clock::now();
  if (!d.load_since) d.load_since = now;
  const double elapsed_ns = static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - *d.load_since).count());
  d.load_since = now;
  std::vector<unsigned> running;
  for (const VcpuInfo& v : d.vcpus) {
    if (PresentInQemu(d, v).value_or(v.enabled)) running.push_back(v.id);
  }
  if (running.empty() || elapsed_ns <= 0) return;
  const double share = std::min(1.0, d.load_cpus / static_cast<double>(running.size()));
  for (unsigned id : running) d.busy_ns[id] += static_cast<uint64_t>(share * elapsed_ns);
}

Result<LoadSample> FakeHypervisor::ReadLoad(const std::string& domain) {
  MutexLock lock(mu_);
  if (unavailable_) {
    return Status::Error(ErrorCode::kHypervisorUnavailable, "injected: hypervisor unavailable");
  }
  Domain* d = FindLocked(domain);
  if (d == nullptr) return Status::Error(ErrorCode::kDomainNotFound, "no domain " + domain);
  AccrueLoadLocked(*d);
  LoadSample sample;
  for (const VcpuInfo& v : d->vcpus) {
    if (PresentInQemu(*d, v).value_or(v.enabled)) sample.vcpus.push_back({v.id, d->busy_ns[v.id], 0});
  }
  sample.memory = d->memory_load;
  return sample;
}

}  // namespace hotplug::backends::fake

// What the benchmarks in tests/bench/ share: flag parsing, percentiles, the resident memory
// of this process, result lines that tests/bench/run_bench.py collects into BENCHMARKS.md,
// and a Hypervisor decorator that timestamps calls and counts those in flight.
// Benchmarks print figures; they never pass or fail on a number.
#pragma once

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/hypervisor.h"

namespace hotplug::bench {

using SteadyClock = std::chrono::steady_clock;

inline double MillisBetween(SteadyClock::time_point start, SteadyClock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// --name value flags; a flag given without a value is "1".
class Flags {
 public:
  Flags(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0) continue;
      std::string name = arg.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        values_[name.substr(0, eq)] = name.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values_[name] = argv[++i];
      } else {
        values_[name] = "1";
      }
    }
  }
  std::string Text(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  long Int(const std::string& name, long fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : std::atol(it->second.c_str());
  }
  double Double(const std::string& name, double fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : std::atof(it->second.c_str());
  }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }

 private:
  std::map<std::string, std::string> values_;
};

// Nearest-rank percentile (p in 0..100) of unsorted samples; 0 when there are none.
inline double Percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(samples.size()) + 0.999999);
  rank = std::clamp<size_t>(rank, 1, samples.size());
  return samples[rank - 1];
}

// n, p50, p90, p99, max and mean of millisecond samples, as JSON.
inline nlohmann::json SummarizeMillis(const std::vector<double>& samples) {
  double sum = 0;
  for (double s : samples) sum += s;
  return {{"n", samples.size()},
          {"p50_ms", Percentile(samples, 50)},
          {"p90_ms", Percentile(samples, 90)},
          {"p99_ms", Percentile(samples, 99)},
          {"max_ms", samples.empty() ? 0.0 : *std::max_element(samples.begin(), samples.end())},
          {"mean_ms", samples.empty() ? 0.0 : sum / static_cast<double>(samples.size())}};
}

// VmRSS of this process in bytes, after handing freed heap pages back (malloc_trim), so the
// figure is what the process holds, not what glibc keeps cached.
inline size_t ResidentBytes() {
  malloc_trim(0);
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

// One figure for run_bench.py: a line "RESULT {json}" on stdout, flushed at once.
inline void Report(const nlohmann::json& result) {
  std::printf("RESULT %s\n", result.dump().c_str());
  std::fflush(stdout);
}

// Passes every call to `inner`; timestamps each SetVcpu as it starts (before the inner
// call's latency) and keeps the number of SetVcpu calls in flight and its maximum.
class TimedHypervisor final : public backends::Hypervisor {
 public:
  // Called on the calling worker's thread at the start of each SetVcpu.
  using SetVcpuHook =
      std::function<void(const std::string& domain, unsigned id, bool enable, SteadyClock::time_point)>;

  TimedHypervisor(backends::Hypervisor& inner, SetVcpuHook on_set_vcpu)
      : inner_(inner), on_set_vcpu_(std::move(on_set_vcpu)) {}

  backends::Result<backends::DomainObservation> Observe(const std::string& domain) override {
    return inner_.Observe(domain);
  }
  backends::Status SetVcpu(const std::string& domain, unsigned id, bool enable,
                           bool persist) override {
    if (on_set_vcpu_) on_set_vcpu_(domain, id, enable, SteadyClock::now());
    int now_in_flight = ++in_flight_;
    int seen = max_in_flight_.load();
    while (now_in_flight > seen && !max_in_flight_.compare_exchange_weak(seen, now_in_flight)) {
    }
    backends::Status status = inner_.SetVcpu(domain, id, enable, persist);
    --in_flight_;
    ++set_vcpu_calls_;
    return status;
  }
  backends::Status PinVcpu(const std::string& domain, unsigned id,
                           const std::vector<unsigned>& host_cpus, bool persist) override {
    return inner_.PinVcpu(domain, id, host_cpus, persist);
  }
  backends::Status OnlineGuestVcpus(const std::string& domain,
                                    const std::vector<unsigned>& ids) override {
    return inner_.OnlineGuestVcpus(domain, ids);
  }
  backends::Status ApplyMemoryStep(const std::string& domain, const backends::MemoryStep& step,
                                   bool persist) override {
    return inner_.ApplyMemoryStep(domain, step, persist);
  }
  backends::Result<backends::DomainClaim> ClaimDomain(
      const std::string& domain, const backends::DomainClaim& claim,
      const std::optional<backends::DomainClaim>& replacing) override {
    return inner_.ClaimDomain(domain, claim, replacing);
  }
  backends::Status ReleaseDomain(const std::string& domain,
                                 const backends::DomainClaim& claim) override {
    return inner_.ReleaseDomain(domain, claim);
  }
  void SetEventSink(DomainEventSink sink) override { inner_.SetEventSink(std::move(sink)); }
  backends::Result<backends::LoadSample> ReadLoad(const std::string& domain) override {
    return inner_.ReadLoad(domain);
  }

  int max_in_flight() const { return max_in_flight_.load(); }
  void ResetMaxInFlight() { max_in_flight_ = in_flight_.load(); }
  int64_t set_vcpu_calls() const { return set_vcpu_calls_.load(); }

 private:
  backends::Hypervisor& inner_;
  SetVcpuHook on_set_vcpu_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int64_t> set_vcpu_calls_{0};
};

}  // namespace hotplug::bench

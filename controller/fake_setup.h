// Test-only wiring of the in-memory hypervisor for --hypervisor=fake: the domains it starts
// with (--fake-domains, --fake-domains-file) and a call log (--fake-call-log) that records
// every successful change and is replayed at start, so a restarted operator finds the fake
// domains as the previous process left them and tests can prove no step ran twice.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/fake/fake_hypervisor.h"
#include "backends/hypervisor.h"

namespace hotplug::controller {

// Parses the YAML list described in --help. False with `error` on bad input.
bool ParseFakeDomains(const std::string& yaml_text, std::vector<backends::fake::DomainSpec>* out,
                      std::string* error);

// vm-0 .. vm-<count-1>: 8 vCPU slots, 1 enabled, 1Gi boot memory of 4Gi.
std::vector<backends::fake::DomainSpec> NumberedFakeDomains(int count);

// Passes every call through to `inner` and appends each successful change to a file, one
// JSON object per line: {"op":"vcpu","domain":..,"id":..,"enable":..,"persist":..,"time":..}
// or {"op":"memory","domain":..,"step":..,"alias":..,"bytes":..,"node":..,"persist":..}.
class CallLoggingHypervisor final : public backends::Hypervisor {
 public:
  CallLoggingHypervisor(backends::Hypervisor& inner, std::FILE* log) : inner_(inner), log_(log) {}

  backends::Result<backends::DomainObservation> Observe(const std::string& domain) override {
    return inner_.Observe(domain);
  }
  backends::Status SetVcpu(const std::string& domain, unsigned id, bool enable,
                           bool persist) override;
  backends::Status OnlineGuestVcpus(const std::string& domain,
                                    const std::vector<unsigned>& ids) override {
    return inner_.OnlineGuestVcpus(domain, ids);
  }
  backends::Status ApplyMemoryStep(const std::string& domain, const backends::MemoryStep& step,
                                   bool persist) override;
  void SetEventSink(DomainEventSink sink) override { inner_.SetEventSink(std::move(sink)); }

 private:
  void Append(const std::string& line);
  backends::Hypervisor& inner_;
  std::mutex mu_;
  std::FILE* log_;  // guarded by mu_
};

// Re-applies the changes recorded in `log_text` to `fake`. Returns how many were applied;
// a line that fails to apply is reported in `error` (the others still apply).
int ReplayCallLog(const std::string& log_text, backends::fake::FakeHypervisor& fake,
                  std::string* error);

}  // namespace hotplug::controller

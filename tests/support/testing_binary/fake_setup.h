// hotplug-operator-testing's in-memory hypervisor (--hypervisor=fake): the domains it starts
// with (--fake-domains, --fake-domains-file) and a call log (--fake-call-log) that records
// every successful change and is replayed at start, so a restarted operator finds the fake
// domains as the previous process left them and tests can prove no step ran twice.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/fake/fake_hypervisor.h"
#include "backends/hypervisor.h"
#include "common/thread_annotations.h"

namespace hotplug::controller {

// Parses the YAML list described in --help. False with `error` on bad input.
bool ParseFakeDomains(const std::string& yaml_text, std::vector<backends::fake::DomainSpec>* out,
                      std::string* error);

// vm-0 .. vm-<count-1>: 8 vCPU slots, 1 enabled, 1Gi boot memory of 4Gi.
std::vector<backends::fake::DomainSpec> NumberedFakeDomains(int count);

// Passes every call through to `fake` and appends each successful change to a file, one
// JSON object per line: {"op":"vcpu","domain":..,"id":..,"enable":..,"persist":..,"time":..}
// or {"op":"memory","domain":..,"step":..,"alias":..,"bytes":..,"node":..,"persist":..}
// or {"op":"claim"|"release","domain":..,"owner":..,"uid":..,"manager":..}
// or {"op":"pin","domain":..,"id":..,"cpus":[..],"persist":..}.
// Several processes may share the file (leader-election tests): before each call, lines
// that others appended since are replayed onto `fake`, so the file acts as one hypervisor.
class CallLoggingHypervisor final : public backends::Hypervisor {
 public:
  // `path` is opened for appending; lines already in it are replayed now.
  CallLoggingHypervisor(backends::fake::FakeHypervisor& fake, std::string path)
      : inner_(fake), fake_(fake), path_(std::move(path)) {}
  ~CallLoggingHypervisor() override;
  // Opens the file and replays what it holds; false with `error` when it cannot be opened.
  bool Open(int* replayed, std::string* error);

  backends::Result<backends::DomainObservation> Observe(const std::string& domain) override;
  backends::Status SetVcpu(const std::string& domain, unsigned id, bool enable,
                           bool persist) override;
  backends::Status PinVcpu(const std::string& domain, unsigned id,
                           const std::vector<unsigned>& host_cpus, bool persist) override;
  backends::Status OnlineGuestVcpus(const std::string& domain,
                                    const std::vector<unsigned>& ids) override {
    return inner_.OnlineGuestVcpus(domain, ids);
  }
  backends::Status ApplyMemoryStep(const std::string& domain, const backends::MemoryStep& step,
                                   bool persist) override;
  backends::Result<backends::DomainClaim> ClaimDomain(
      const std::string& domain, const backends::DomainClaim& claim,
      const std::optional<backends::DomainClaim>& replacing) override;
  backends::Status ReleaseDomain(const std::string& domain,
                                 const backends::DomainClaim& claim) override;
  void SetEventSink(DomainEventSink sink) override { inner_.SetEventSink(std::move(sink)); }
  backends::Result<backends::LoadSample> ReadLoad(const std::string& domain) override {
    return inner_.ReadLoad(domain);
  }

 private:
  // Replays lines appended by other processes. Called with mu_ held.
  void CatchUpLocked() REQUIRES(mu_);
  void AppendLocked(const std::string& line) REQUIRES(mu_);
  backends::Hypervisor& inner_;
  backends::fake::FakeHypervisor& fake_;
  const std::string path_;
  Mutex mu_;  // serialises calls, so the file and the fake move together
  std::FILE* log_ GUARDED_BY(mu_) = nullptr;
  long offset_ GUARDED_BY(mu_) = 0;  // bytes of the file already applied
  std::set<long> own_lines_ GUARDED_BY(mu_);  // offsets of our lines not yet passed by offset_
};

// Re-applies the changes recorded in `log_text` to `fake`. Returns how many were applied;
// a line that fails to apply is reported in `error` (the others still apply).
int ReplayCallLog(const std::string& log_text, backends::fake::FakeHypervisor& fake,
                  std::string* error);

}  // namespace hotplug::controller

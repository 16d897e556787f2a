#include "tests/support/testing_binary/fake_backend.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backends/fake/fake_hypervisor.h"
#include "controller/log.h"
#include "tests/support/testing_binary/fake_setup.h"

namespace hotplug::controller {
namespace {

bool ReadWholeFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

// The fake and the call log in front of it, kept alive together behind one Hypervisor.
struct FakeStack {
  backends::fake::FakeHypervisor fake;
  std::unique_ptr<CallLoggingHypervisor> logging;
};

class FakeBackend final : public HypervisorBackend {
 public:
  std::string kind() const override { return "fake"; }

  void AddFlags(FlagTable* table) override {
    (*table)["fake-domains"] = {false, IntegerFlag(&domains_, 0)};
    (*table)["fake-domains-file"] = {false, TextFlag(&domains_file_)};
    (*table)["fake-call-log"] = {false, TextFlag(&call_log_)};
    (*table)["fake-vcpu-latency"] = {false, DurationFlag(&vcpu_latency_, true)};
  }

  bool FlagsGiven() const override {
    return domains_ > 0 || !domains_file_.empty() || !call_log_.empty() ||
           vcpu_latency_.count() > 0;
  }

  std::string FlagHelp() const override {
    return "\nFake hypervisor (hotplug-operator-testing only; need --hypervisor=fake):\n"
           "  --fake-domains N         create running domains vm-0 .. vm-<N-1>, each with 8\n"
           "                           vCPU slots, 1 enabled, 1Gi of 4Gi memory.\n"
           "  --fake-domains-file F    create the domains listed in F, a YAML list of\n"
           "                           {name, maximumVcpus, currentVcpus, persistent, tcg,\n"
           "                           state: running|paused|shutoff, guestAgent, bootMemory,\n"
           "                           maximumMemory, memorySlots, virtioMemSize, hostMaxVcpus}.\n"
           "  --fake-call-log F        append each successful vCPU/memory change as a JSON line\n"
           "                           to F; at start, replay the lines already in F onto the\n"
           "                           fake domains, so a restarted process finds them as the\n"
           "                           previous one left them (like a real hypervisor). Processes\n"
           "                           sharing F replay each other's lines before each call.\n"
           "  --fake-vcpu-latency D    each vCPU change takes this long. Default: 0.\n";
  }

  std::shared_ptr<backends::Hypervisor> Build(const Flags&, std::string* error) override {
    std::vector<backends::fake::DomainSpec> domains = NumberedFakeDomains(domains_);
    if (!domains_file_.empty() && !ReadDomainsFile(&domains, error)) return nullptr;
    auto stack = std::make_shared<FakeStack>();
    for (const auto& domain : domains) stack->fake.AddDomain(domain);
    if (vcpu_latency_.count() > 0) {
      stack->fake.SetLatency(std::chrono::microseconds(0),
                             std::chrono::duration_cast<std::chrono::microseconds>(vcpu_latency_));
    }
    log::Info("hypervisor: fake", {{"domains", std::to_string(domains.size())}});
    if (call_log_.empty()) return std::shared_ptr<backends::Hypervisor>(stack, &stack->fake);
    if (!OpenCallLog(stack.get(), error)) return nullptr;
    return std::shared_ptr<backends::Hypervisor>(stack, stack->logging.get());
  }

 private:
  bool ReadDomainsFile(std::vector<backends::fake::DomainSpec>* domains, std::string* error) {
    std::string text;
    if (!ReadWholeFile(domains_file_, &text)) {
      *error = "--fake-domains-file: cannot read " + domains_file_;
      return false;
    }
    if (!ParseFakeDomains(text, domains, error)) {
      *error = "--fake-domains-file " + domains_file_ + ": " + *error;
      return false;
    }
    return true;
  }

  bool OpenCallLog(FakeStack* stack, std::string* error) {
    stack->logging = std::make_unique<CallLoggingHypervisor>(stack->fake, call_log_);
    int replayed = 0;
    std::string replay_error;
    if (!stack->logging->Open(&replayed, &replay_error)) {
      *error = "--fake-call-log: " + replay_error;
      return false;
    }
    log::Info("fake hypervisor: replayed the call log",
              {{"file", call_log_}, {"changes", std::to_string(replayed)}});
    if (!replay_error.empty()) {
      log::Warn("fake hypervisor: a logged change did not replay", {{"error", replay_error}});
    }
    return true;
  }

  int domains_ = 0;
  std::string domains_file_;
  std::string call_log_;
  std::chrono::milliseconds vcpu_latency_{0};
};

}  // namespace

std::unique_ptr<HypervisorBackend> MakeFakeBackend() { return std::make_unique<FakeBackend>(); }

}  // namespace hotplug::controller

#include "tests/support/testing_binary/fake_setup.h"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "crd/quantity.h"
#include "reconciler/clock.h"

namespace hotplug::controller {

using json = nlohmann::json;

namespace {

bool Bytes(const YAML::Node& node, const char* key, uint64_t* out, std::string* error) {
  if (!node[key]) return true;
  std::string why;
  auto quantity = crd::Quantity::Parse(node[key].as<std::string>(), &why);
  if (!quantity || quantity->IsNegative()) {
    *error = std::string(key) + ": " + (why.empty() ? "not a quantity" : why);
    return false;
  }
  *out = static_cast<uint64_t>(quantity->Value());
  return true;
}

}  // namespace

bool ParseFakeDomains(const std::string& yaml_text, std::vector<backends::fake::DomainSpec>* out,
                      std::string* error) {
  try {
    YAML::Node doc = YAML::Load(yaml_text);
    if (!doc.IsSequence()) {
      *error = "want a YAML list of domains";
      return false;
    }
    for (const auto& node : doc) {
      backends::fake::DomainSpec spec;
      if (!node["name"]) {
        *error = "a domain without a name";
        return false;
      }
      spec.name = node["name"].as<std::string>();
      if (node["maximumVcpus"]) spec.maximum_vcpus = node["maximumVcpus"].as<unsigned>();
      if (node["currentVcpus"]) spec.current_vcpus = node["currentVcpus"].as<unsigned>();
      if (node["persistent"]) spec.persistent = node["persistent"].as<bool>();
      if (node["tcg"]) spec.tcg = node["tcg"].as<bool>();
      if (node["guestAgent"]) spec.guest_agent = node["guestAgent"].as<bool>();
      if (node["memorySlots"]) spec.memory_slots = node["memorySlots"].as<unsigned>();
      if (node["hostMaxVcpus"]) spec.host_max_vcpus = node["hostMaxVcpus"].as<unsigned>();
      if (node["state"]) {
        std::string state = node["state"].as<std::string>();
        if (state == "running") {
          spec.state = backends::DomainState::kRunning;
        } else if (state == "paused") {
          spec.state = backends::DomainState::kPaused;
        } else if (state == "shutoff") {
          spec.state = backends::DomainState::kShutOff;
        } else {
          *error = spec.name + ": state must be running, paused or shutoff";
          return false;
        }
      }
      if (!Bytes(node, "bootMemory", &spec.boot_memory_bytes, error) ||
          !Bytes(node, "maximumMemory", &spec.maximum_memory_bytes, error) ||
          !Bytes(node, "virtioMemSize", &spec.virtio_mem_size_bytes, error)) {
        *error = spec.name + ": " + *error;
        return false;
      }
      if (spec.current_vcpus < 1 || spec.current_vcpus > spec.maximum_vcpus) {
        *error = spec.name + ": currentVcpus must be 1..maximumVcpus";
        return false;
      }
      out->push_back(spec);
    }
    return true;
  } catch (const YAML::Exception& e) {
    *error = e.what();
    return false;
  }
}

std::vector<backends::fake::DomainSpec> NumberedFakeDomains(int count) {
  std::vector<backends::fake::DomainSpec> domains;
  domains.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    backends::fake::DomainSpec spec;
    spec.name = "vm-" + std::to_string(i);
    spec.maximum_vcpus = 8;
    spec.current_vcpus = 1;
    domains.push_back(spec);
  }
  return domains;
}

CallLoggingHypervisor::~CallLoggingHypervisor() {
  if (log_) std::fclose(log_);
}

bool CallLoggingHypervisor::Open(int* replayed, std::string* error) {
  MutexLock lock(mu_);
  log_ = std::fopen(path_.c_str(), "a+");
  if (!log_) {
    *error = "cannot open " + path_ + " for appending";
    return false;
  }
  std::string replay_error;
  std::fseek(log_, 0, SEEK_END);
  long size = std::ftell(log_);
  std::string text(static_cast<size_t>(size), '\0');
  std::fseek(log_, 0, SEEK_SET);
  size_t got = std::fread(text.data(), 1, text.size(), log_);
  text.resize(got);
  // Only whole lines count: a writer may be mid-line.
  size_t whole = text.rfind('\n');
  text.resize(whole == std::string::npos ? 0 : whole + 1);
  *replayed = ReplayCallLog(text, fake_, &replay_error);
  offset_ = static_cast<long>(text.size());
  if (!replay_error.empty()) *error = replay_error;
  return true;
}

void CallLoggingHypervisor::CatchUpLocked() {
  if (!log_) return;
  std::fflush(log_);
  std::fseek(log_, 0, SEEK_END);
  long size = std::ftell(log_);
  if (size <= offset_) return;
  std::string text(static_cast<size_t>(size - offset_), '\0');
  std::fseek(log_, offset_, SEEK_SET);
  size_t got = std::fread(text.data(), 1, text.size(), log_);
  text.resize(got);
  // Whole lines only, each applied unless it is one of ours (already applied).
  size_t start = 0;
  std::string ignored;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    if (own_lines_.erase(offset_ + static_cast<long>(start)) == 0) {
      ReplayCallLog(text.substr(start, end + 1 - start), fake_, &ignored);
    }
  }
  offset_ += static_cast<long>(start);
}

void CallLoggingHypervisor::AppendLocked(const std::string& line) {
  if (!log_) return;
  // Lines other processes appended while our call ran come first.
  CatchUpLocked();
  std::string text = line + "\n";
  std::fseek(log_, 0, SEEK_END);  // "a+" appends anyway
  std::fwrite(text.data(), 1, text.size(), log_);
  std::fflush(log_);  // one write(2) of a short line: appended whole
  long end = std::ftell(log_);
  long start = end - static_cast<long>(text.size());
  if (start == offset_) {
    offset_ = end;
  } else {
    // Another process appended between the catch-up and our write: its lines are still
    // to be applied, ours is to be skipped when the catch-up reaches it.
    own_lines_.insert(start);
  }
}

backends::Result<backends::DomainObservation> CallLoggingHypervisor::Observe(
    const std::string& domain) {
  {
    MutexLock lock(mu_);
    CatchUpLocked();
  }
  return inner_.Observe(domain);
}

backends::Status CallLoggingHypervisor::SetVcpu(const std::string& domain, unsigned id, bool enable,
                                                bool persist) {
  MutexLock lock(mu_);
  CatchUpLocked();
  backends::Status status = inner_.SetVcpu(domain, id, enable, persist);
  if (status.ok()) {
    AppendLocked(json{{"op", "vcpu"},
                      {"domain", domain},
                      {"id", id},
                      {"enable", enable},
                      {"persist", persist},
                      {"time", reconciler::FormatRfc3339(std::chrono::system_clock::now())}}
                     .dump());
  }
  return status;
}

backends::Status CallLoggingHypervisor::ApplyMemoryStep(const std::string& domain,
                                                        const backends::MemoryStep& step,
                                                        bool persist) {
  MutexLock lock(mu_);
  CatchUpLocked();
  backends::Status status = inner_.ApplyMemoryStep(domain, step, persist);
  if (status.ok()) {
    AppendLocked(json{{"op", "memory"},
                      {"domain", domain},
                      {"step", static_cast<int>(step.op)},
                      {"stepName", backends::MemoryStepOpName(step.op)},
                      {"alias", step.alias},
                      {"bytes", step.bytes},
                      {"node", step.node},
                      {"persist", persist},
                      {"time", reconciler::FormatRfc3339(std::chrono::system_clock::now())}}
                     .dump());
  }
  return status;
}

namespace {

json ClaimLine(const char* op, const std::string& domain, const backends::DomainClaim& claim) {
  return {{"op", op},
          {"domain", domain},
          {"owner", claim.owner},
          {"uid", claim.uid},
          {"manager", claim.manager}};
}

}  // namespace

backends::Result<backends::DomainClaim> CallLoggingHypervisor::ClaimDomain(
    const std::string& domain, const backends::DomainClaim& claim,
    const std::optional<backends::DomainClaim>& replacing) {
  MutexLock lock(mu_);
  CatchUpLocked();
  auto before = fake_.Peek(domain);
  auto owner = inner_.ClaimDomain(domain, claim, replacing);
  if (owner.ok() && owner.value() == claim && (!before || before->claim != claim)) {
    AppendLocked(ClaimLine("claim", domain, claim).dump());
  }
  return owner;
}

backends::Status CallLoggingHypervisor::PinVcpu(const std::string& domain, unsigned id,
                                                const std::vector<unsigned>& host_cpus,
                                                bool persist) {
  MutexLock lock(mu_);
  CatchUpLocked();
  backends::Status status = inner_.PinVcpu(domain, id, host_cpus, persist);
  if (status.ok()) {
    AppendLocked(json{{"op", "pin"}, {"domain", domain}, {"id", id}, {"cpus", host_cpus},
                      {"persist", persist}}
                     .dump());
  }
  return status;
}

backends::Status CallLoggingHypervisor::ReleaseDomain(const std::string& domain,
                                                      const backends::DomainClaim& claim) {
  MutexLock lock(mu_);
  CatchUpLocked();
  backends::Status status = inner_.ReleaseDomain(domain, claim);
  if (status.ok()) AppendLocked(ClaimLine("release", domain, claim).dump());
  return status;
}

int ReplayCallLog(const std::string& log_text, backends::fake::FakeHypervisor& fake,
                  std::string* error) {
  std::istringstream lines(log_text);
  std::string line;
  int applied = 0;
  int number = 0;
  while (std::getline(lines, line)) {
    number++;
    if (line.empty()) continue;
    try {
      json entry = json::parse(line);
      std::string domain = entry.at("domain");
      backends::Status status;
      if (entry.at("op") == "claim" || entry.at("op") == "release") {
        const backends::DomainClaim claim{entry.at("owner"), entry.at("uid"), entry.at("manager")};
        if (entry.at("op") == "release") {
          status = fake.ReleaseDomain(domain, claim);
        } else {
          // What was written holds, whoever held the domain before.
          auto held = fake.Peek(domain);
          auto owner = fake.ClaimDomain(domain, claim, held ? held->claim : std::nullopt);
          status = owner.status();
        }
      } else if (entry.at("op") == "pin") {
        status = fake.PinVcpu(domain, entry.at("id"), entry.at("cpus").get<std::vector<unsigned>>(),
                              entry.at("persist"));
      } else if (entry.at("op") == "vcpu") {
        status = fake.SetVcpu(domain, entry.at("id"), entry.at("enable"), entry.at("persist"));
      } else {
        backends::MemoryStep step;
        step.op = static_cast<backends::MemoryStep::Op>(entry.at("step").get<int>());
        step.alias = entry.at("alias");
        step.bytes = entry.at("bytes");
        step.node = entry.at("node");
        status = fake.ApplyMemoryStep(domain, step, entry.at("persist"));
      }
      if (status.ok()) {
        applied++;
      } else if (error->empty()) {
        *error = "line " + std::to_string(number) + ": " + status.ToString();
      }
    } catch (const json::exception& e) {
      if (error->empty()) *error = "line " + std::to_string(number) + ": " + e.what();
    }
  }
  return applied;
}

}  // namespace hotplug::controller

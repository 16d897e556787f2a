// The execute stage's single steps: one hypervisor call each, between the optional hooks,
// timed for the latency histograms, recorded as a StepRecord, an Event and, when it failed,
// a failure record.
#include <algorithm>

#include "backends/range_list.h"
#include "crd/quantity.h"
#include "reconciler/hooks.h"
#include "reconciler/pass.h"

namespace hotplug::reconciler {

using backends::FormatRangeList;
namespace {

using backends::ErrorCode;
using backends::Status;

std::string Millis(double seconds) {
  return std::to_string(static_cast<long long>(seconds * 1000.0 + 0.5)) + " ms";
}

}  // namespace

std::map<std::string, std::string> Pass::HookEnv(const std::string& operation) const {
  return {{"HOTPLUG_DOMAIN", domain_},
          {"HOTPLUG_NAMESPACE", object_.metadata.namespace_},
          {"HOTPLUG_NAME", object_.metadata.name},
          {"HOTPLUG_OPERATION", operation}};
}

bool Pass::BeforeHookAllows(const char* hook, const std::string& resource,
                            std::optional<int64_t> id, const std::string& operation,
                            std::map<std::string, std::string>& env) {
  HookOutcome before = RunHook(options_.hooks_dir, hook, env, options_.hook_timeout);
  if (!before.ran || before.ok) return true;
  RecordFailure(resource, id, operation, Reason::kHookFailed, before.message);
  if (resource == "vcpu") {
    result_.events.push_back(
        {Event::Type::kWarning, ReasonName(Reason::kHookFailed),
         "vCPU " + std::to_string(*id) + " " + operation + " skipped: " + before.message});
    vcpu_failure_ = "vcpu " + std::to_string(*id) + " skipped: " + before.message;
  } else {
    memory_failure_ = "memory " + operation + " skipped: " + before.message;
  }
  return false;
}

bool Pass::ExecuteVcpuStep(unsigned id, bool enable) {
  const std::string operation = enable ? "plug" : "unplug";
  auto env = HookEnv(operation);
  env["HOTPLUG_VCPU"] = std::to_string(id);
  if (!BeforeHookAllows("before_set_vcpu", "vcpu", id, operation, env)) return false;
  if (enable && !PinBeforePlug(id)) return false;

  const auto start = clock_.Monotonic();
  Status status = hypervisor_.SetVcpu(domain_, id, enable, persist_);
  const double seconds = std::chrono::duration<double>(clock_.Monotonic() - start).count();
  result_.steps.push_back({"vcpu", operation, id, 0, status});
  const bool pending = !enable && status.code() == ErrorCode::kTimeout;
  const char* outcome = status.ok() ? "success" : pending ? "pending" : "failure";
  metrics_.VcpuOperation(operation, outcome, seconds);
  env["HOTPLUG_RESULT"] = outcome;
  RecordVcpuOutcome(id, enable, status, seconds);
  RunHook(options_.hooks_dir, "after_set_vcpu", env, options_.hook_timeout);
  return status.ok() || pending;
}

bool Pass::PinBeforePlug(unsigned id) {
  auto pin = pin_plan_.pins.find(id);
  if (pin == pin_plan_.pins.end()) return true;
  const std::string cpus = FormatRangeList(pin->second);
  Status status = hypervisor_.PinVcpu(domain_, id, pin->second, persist_);
  result_.steps.push_back({"vcpu", "pin", id, 0, status});
  if (status.ok()) return true;
  // Not plugged: it would run unpinned among pinned vCPUs.
  RecordFailure("vcpu", id, "pin", ReasonForError(status.code()), status.message());
  result_.events.push_back({Event::Type::kWarning, "VcpuPinFailed",
                            "pinning vCPU " + std::to_string(id) + " to host CPU " + cpus +
                                " failed, so it was not plugged: " + status.message()});
  vcpu_failure_ = "vcpu " + std::to_string(id) + " pin to host CPU " + cpus +
                  " failed (not plugged): " + status.message();
  return false;
}

void Pass::RecordVcpuOutcome(unsigned id, bool enable, const Status& status, double seconds) {
  const std::string operation = enable ? "plug" : "unplug";
  const std::string vcpu = std::to_string(id);
  if (status.ok()) {
    (enable ? plugged_ : unplugged_).push_back(id);
    auto pin = enable ? pin_plan_.pins.find(id) : pin_plan_.pins.end();
    const std::string pinned = pin == pin_plan_.pins.end()
                                   ? ""
                                   : " (pinned to host CPU " + FormatRangeList(pin->second) + ")";
    result_.events.push_back({Event::Type::kNormal, enable ? "VcpuPlugged" : "VcpuUnplugged",
                              std::string(enable ? "plugged" : "unplugged") + " vCPU " + vcpu +
                                  pinned + " in " + Millis(seconds)});
  } else if (!enable && status.code() == ErrorCode::kTimeout) {
    newly_pending_.push_back(id);
    result_.events.push_back(
        {Event::Type::kNormal, ReasonName(Reason::kUnplugPending),
         "unplug of vCPU " + vcpu +
             " requested; the hypervisor has not confirmed it yet: " + status.message()});
  } else {
    RecordFailure("vcpu", id, operation, ReasonForError(status.code()), status.message());
    result_.events.push_back({Event::Type::kWarning, enable ? "VcpuPlugFailed" : "VcpuUnplugFailed",
                              operation + " of vCPU " + vcpu + " failed: " + status.message()});
    vcpu_failure_ = "vcpu " + vcpu + " " + operation + " failed: " + status.message();
  }
}

void Pass::OnlineInGuest() {
  const bool use_agent =
      spec_.cpu.guest_online == crd::GuestOnline::kAgent ||
      (spec_.cpu.guest_online == crd::GuestOnline::kAuto && observation_.guest_agent_available);
  if (plugged_.empty() || !use_agent) return;
  // Guest CPU numbers follow plug order, not libvirt ids: online every guest CPU that the
  // enabled count covers and the guest does not report online yet.
  unsigned enabled = 0;
  for (const auto& v : observation_.vcpus) enabled += v.enabled ? 1 : 0;
  enabled += static_cast<unsigned>(plugged_.size());
  std::vector<unsigned> offline;
  const auto& online = observation_.guest_online_cpus.value_or(std::vector<unsigned>{});
  for (unsigned cpu = 0; cpu < enabled; ++cpu) {
    if (std::find(online.begin(), online.end(), cpu) == online.end()) offline.push_back(cpu);
  }
  if (offline.empty()) return;
  const auto start = clock_.Monotonic();
  Status status = hypervisor_.OnlineGuestVcpus(domain_, offline);
  metrics_.VcpuOperation("online", status.ok() ? "success" : "failure",
                         std::chrono::duration<double>(clock_.Monotonic() - start).count());
  result_.steps.push_back({"vcpu", "online", -1, 0, status});
  if (status.ok()) return;
  RecordFailure("vcpu", std::nullopt, "online", ReasonForError(status.code()), status.message());
  result_.events.push_back({Event::Type::kWarning, ReasonName(Reason::kGuestAgentUnavailable),
                            "could not bring CPU " + FormatRangeList(offline) +
                                " online in the guest: " + status.message()});
  vcpu_failure_ = "guest CPU " + FormatRangeList(offline) + " not onlined: " + status.message();
}

bool Pass::ExecuteMemoryStep(const backends::MemoryStep& step) {
  const std::string operation = backends::MemoryStepOpName(step.op);
  auto env = HookEnv(operation);
  env["HOTPLUG_MEMORY_BYTES"] = std::to_string(step.bytes);
  if (!BeforeHookAllows("before_set_memory", "memory", std::nullopt, operation, env)) {
    return false;
  }
  const auto start = clock_.Monotonic();
  Status status = hypervisor_.ApplyMemoryStep(domain_, step, persist_);
  const double seconds = std::chrono::duration<double>(clock_.Monotonic() - start).count();
  result_.steps.push_back({"memory", operation, -1, step.bytes, status});
  metrics_.MemoryOperation(operation, status.ok() ? "success" : "failure", seconds);
  env["HOTPLUG_RESULT"] = status.ok() ? "success" : "failure";
  const std::string what = "memory " + operation + " to " + crd::FormatBytes(step.bytes) +
                           (step.alias.empty() ? "" : " (" + step.alias + ")");
  if (status.ok()) {
    result_.events.push_back(
        {Event::Type::kNormal, "MemoryChanged", what + " in " + Millis(seconds)});
  } else {
    RecordFailure("memory", std::nullopt, operation, ReasonForError(status.code()),
                  status.message());
    result_.events.push_back(
        {Event::Type::kWarning, "MemoryChangeFailed", what + " failed: " + status.message()});
    memory_failure_ = what + " failed: " + status.message();
  }
  RunHook(options_.hooks_dir, "after_set_memory", env, options_.hook_timeout);
  return status.ok();
}

}  // namespace hotplug::reconciler

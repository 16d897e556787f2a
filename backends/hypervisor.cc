#include "backends/hypervisor.h"

#include <iterator>

namespace hotplug::backends {
namespace {

// Names by enum value; the static_asserts keep each table as long as its enum.
constexpr const char* kErrorCodeNames[] = {
    "Ok",
    "DomainNotFound",
    "DomainNotRunning",
    "HypervisorUnavailable",
    "OperationInvalid",
    "Timeout",
    "GuestAgentUnavailable",
    "Unsupported",
    "GuestRejected",
    "HypervisorError"};  // kInternal: the hypervisor's own error
static_assert(std::size(kErrorCodeNames) == static_cast<size_t>(ErrorCode::kInternal) + 1);
constexpr const char* kDomainStateNames[] = {"running", "paused", "shut off", "crashed", "other"};
static_assert(std::size(kDomainStateNames) == static_cast<size_t>(DomainState::kOther) + 1);
constexpr const char* kJobKindNames[] = {"none", "migration", "save", "snapshot", "job"};
static_assert(std::size(kJobKindNames) == static_cast<size_t>(JobKind::kOther) + 1);
constexpr const char* kMemoryStepOpNames[] = {"attach", "detach", "resize", "balloon"};
static_assert(std::size(kMemoryStepOpNames) ==
              static_cast<size_t>(MemoryStep::Op::kSetBalloon) + 1);

}  // namespace

const char* ErrorCodeName(ErrorCode code) { return kErrorCodeNames[static_cast<size_t>(code)]; }

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string text = std::string(ErrorCodeName(code_)) + ": " + message_;
  if (native_code_ != 0) text += " (code " + std::to_string(native_code_) + ")";
  return text;
}

const char* DomainStateName(DomainState state) {
  return kDomainStateNames[static_cast<size_t>(state)];
}

const char* JobKindName(JobKind job) { return kJobKindNames[static_cast<size_t>(job)]; }

const char* MemoryStepOpName(MemoryStep::Op op) {
  return kMemoryStepOpNames[static_cast<size_t>(op)];
}

}  // namespace hotplug::backends

#include "reconciler/reasons.h"

namespace hotplug::reconciler {
namespace {

using backends::ErrorCode;

// By backends::ErrorCode, in its order: each code's name is the reason's name.
constexpr Reason kReasonOfError[] = {
    Reason::kHypervisorError,        // kOk: not a failure; never asked for
    Reason::kDomainNotFound,         // kDomainNotFound
    Reason::kDomainNotRunning,       // kDomainNotRunning
    Reason::kHypervisorUnavailable,  // kHypervisorUnavailable
    Reason::kOperationInvalid,       // kOperationInvalid
    Reason::kTimeout,                // kTimeout
    Reason::kGuestAgentUnavailable,  // kGuestAgentUnavailable
    Reason::kUnsupported,            // kUnsupported
    Reason::kGuestRejected,          // kGuestRejected
    Reason::kHypervisorError,        // kInternal
};
static_assert(std::size(kReasonOfError) == static_cast<size_t>(ErrorCode::kInternal) + 1);

}  // namespace

std::optional<Reason> ParseReason(std::string_view name) {
  for (const ReasonInfo& info : kReasons) {
    if (name == info.name) return info.reason;
  }
  return std::nullopt;
}

Reason ReasonForError(ErrorCode code) { return kReasonOfError[static_cast<size_t>(code)]; }

}  // namespace hotplug::reconciler

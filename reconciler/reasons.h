// The condition reasons: one typed vocabulary for the planner, the pass, the status, the
// Events and the metrics. Each reason's name (a stable CamelCase word, part of the API), what
// it means for the Event when Ready turns to it, and when a pass that ends with it comes
// back, are given once, in kReasons.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "backends/hypervisor.h"

namespace hotplug::reconciler {

enum class Reason {
  kSynced,
  kNotManaged,
  kInProgress,
  kPartialFailure,
  kUnplugPending,
  kOutOfSync,
  kReplugRefused,
  kExceedsMaximum,
  kBelowMinimum,
  kHostLimit,
  kTopologyMismatch,
  kPinningUnavailable,
  kNumaSplitsSocket,
  kDomainNotFound,
  kDomainClaimed,
  kDomainNotRunning,
  kMigrationInProgress,
  kJobInProgress,
  kGuestAgentUnavailable,
  kHypervisorUnavailable,
  kInvalidSpec,
  kSuspended,
  kHookFailed,
  kShrinkNotAllowed,
  kUnplugUnsupportedByGuest,
  kBlockMisaligned,
  kMemoryUnsupported,
  kMemoryFloor,
  // The Autoscaling condition (reconciler/autoscaler.h).
  kRecommending,
  kAutoscaling,
  kLoadUnavailable,
  kAutoscaleCapped,
  // Observing the domain failed with one of the hypervisor's other error codes.
  kOperationInvalid,
  kTimeout,
  kUnsupported,
  kGuestRejected,
  kHypervisorError,
};

// When a pass whose conditions carry a reason comes back on its own. A pass takes the
// soonest that any of its conditions asks for; kBackoff wins over every delay.
enum class Requeue {
  kNone,      // on the next change: a spec edit, a domain event, the periodic resync
  kProgress,  // steps are left: vCPUs at once, memory after Options::pending_requeue (the
              // guest takes each block in its own time)
  kPoll,      // the guest or the hypervisor is catching up: after Options::pending_requeue
  kBlocked,   // the domain is absent, stopped or busy: after Options::blocked_requeue
  kBackoff,   // an error: again with the work queue's per-object backoff
};

struct ReasonInfo {
  Reason reason;
  const char* name;
  // Something failed, or nothing can be changed until a person or the domain acts. Events
  // about it are Warnings.
  bool failure;
  Requeue requeue;
  // Ready turning to this reason is an Event. False for the reasons whose steps have their
  // own Events (a failed step, a requested unplug) and for work under way.
  bool transition_event;
};

inline constexpr ReasonInfo kReasons[] = {
    {Reason::kSynced, "Synced", false, Requeue::kNone, true},
    {Reason::kNotManaged, "NotManaged", false, Requeue::kNone, false},
    {Reason::kInProgress, "InProgress", false, Requeue::kProgress, false},
    {Reason::kPartialFailure, "PartialFailure", true, Requeue::kBackoff, false},
    {Reason::kUnplugPending, "UnplugPending", false, Requeue::kPoll, false},
    {Reason::kOutOfSync, "OutOfSync", true, Requeue::kBlocked, true},
    {Reason::kReplugRefused, "ReplugRefused", true, Requeue::kBlocked, true},
    {Reason::kExceedsMaximum, "ExceedsMaximum", true, Requeue::kNone, true},
    {Reason::kBelowMinimum, "BelowMinimum", true, Requeue::kNone, true},
    {Reason::kHostLimit, "HostLimit", true, Requeue::kNone, true},
    {Reason::kTopologyMismatch, "TopologyMismatch", true, Requeue::kNone, true},
    // A plugged vCPU would run unpinned among pinned ones (reconciler/pinning.h).
    {Reason::kPinningUnavailable, "PinningUnavailable", true, Requeue::kNone, true},
    // The domain's NUMA cells split a socket's vCPUs: CPU hot-plug is refused (openEuler).
    {Reason::kNumaSplitsSocket, "NumaSplitsSocket", true, Requeue::kNone, true},
    {Reason::kDomainNotFound, "DomainNotFound", true, Requeue::kBlocked, true},
    // Another ElasticVM owns the domain. Its release (a metadata-change event) or the
    // periodic resync brings the next look.
    {Reason::kDomainClaimed, "DomainClaimed", true, Requeue::kBlocked, true},
    {Reason::kDomainNotRunning, "DomainNotRunning", true, Requeue::kBlocked, true},
    {Reason::kMigrationInProgress, "MigrationInProgress", true, Requeue::kBlocked, true},
    {Reason::kJobInProgress, "JobInProgress", true, Requeue::kBlocked, true},
    {Reason::kGuestAgentUnavailable, "GuestAgentUnavailable", true, Requeue::kBackoff, true},
    {Reason::kHypervisorUnavailable, "HypervisorUnavailable", true, Requeue::kBackoff, true},
    {Reason::kInvalidSpec, "InvalidSpec", true, Requeue::kNone, true},
    {Reason::kSuspended, "Suspended", true, Requeue::kNone, true},
    {Reason::kHookFailed, "HookFailed", true, Requeue::kBackoff, false},
    {Reason::kShrinkNotAllowed, "ShrinkNotAllowed", true, Requeue::kNone, true},
    // The guest OS cannot give back what the spec takes away (reconciler/guest_os.h).
    {Reason::kUnplugUnsupportedByGuest, "UnplugUnsupportedByGuest", true, Requeue::kNone, true},
    {Reason::kBlockMisaligned, "BlockMisaligned", true, Requeue::kNone, true},
    {Reason::kMemoryUnsupported, "MemoryUnsupported", true, Requeue::kNone, true},
    {Reason::kMemoryFloor, "BelowMemoryFloor", true, Requeue::kNone, true},
    {Reason::kRecommending, "Recommending", false, Requeue::kNone, false},
    {Reason::kAutoscaling, "Autoscaling", false, Requeue::kNone, false},
    {Reason::kLoadUnavailable, "LoadUnavailable", true, Requeue::kNone, false},
    {Reason::kAutoscaleCapped, "AutoscaleCapped", true, Requeue::kNone, false},
    {Reason::kOperationInvalid, "OperationInvalid", true, Requeue::kBackoff, true},
    {Reason::kTimeout, "Timeout", true, Requeue::kBackoff, true},
    {Reason::kUnsupported, "Unsupported", true, Requeue::kBackoff, true},
    {Reason::kGuestRejected, "GuestRejected", true, Requeue::kBackoff, true},
    {Reason::kHypervisorError, "HypervisorError", true, Requeue::kBackoff, true},
};

// The table is indexed by the enum: every row stands at its own value's place.
constexpr bool ReasonTableIsInOrder() {
  for (size_t i = 0; i < std::size(kReasons); ++i) {
    if (static_cast<size_t>(kReasons[i].reason) != i) return false;
  }
  return static_cast<size_t>(Reason::kHypervisorError) + 1 == std::size(kReasons);
}
static_assert(ReasonTableIsInOrder(), "kReasons must list every Reason once, in enum order");

constexpr const ReasonInfo& InfoOf(Reason reason) { return kReasons[static_cast<size_t>(reason)]; }
constexpr const char* ReasonName(Reason reason) { return InfoOf(reason).name; }

// The reason named `name`; nullopt for a word that is not one (a hand-written status).
std::optional<Reason> ParseReason(std::string_view name);

// The reason a failed hypervisor call gives a condition or a failure record.
Reason ReasonForError(backends::ErrorCode code);

}  // namespace hotplug::reconciler

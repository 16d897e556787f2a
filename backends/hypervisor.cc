#include "backends/hypervisor.h"

namespace hotplug::backends {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "Ok";
    case ErrorCode::kDomainNotFound:
      return "DomainNotFound";
    case ErrorCode::kDomainNotRunning:
      return "DomainNotRunning";
    case ErrorCode::kHypervisorUnavailable:
      return "HypervisorUnavailable";
    case ErrorCode::kOperationInvalid:
      return "OperationInvalid";
    case ErrorCode::kTimeout:
      return "Timeout";
    case ErrorCode::kGuestAgentUnavailable:
      return "GuestAgentUnavailable";
    case ErrorCode::kUnsupported:
      return "Unsupported";
    case ErrorCode::kGuestRejected:
      return "GuestRejected";
    case ErrorCode::kInternal:
      break;
  }
  return "HypervisorError";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string text = std::string(ErrorCodeName(code_)) + ": " + message_;
  if (native_code_ != 0) text += " (code " + std::to_string(native_code_) + ")";
  return text;
}

const char* DomainStateName(DomainState state) {
  switch (state) {
    case DomainState::kRunning:
      return "running";
    case DomainState::kPaused:
      return "paused";
    case DomainState::kShutOff:
      return "shut off";
    case DomainState::kCrashed:
      return "crashed";
    case DomainState::kOther:
      break;
  }
  return "other";
}

const char* JobKindName(JobKind job) {
  switch (job) {
    case JobKind::kNone:
      return "none";
    case JobKind::kMigration:
      return "migration";
    case JobKind::kSave:
      return "save";
    case JobKind::kSnapshot:
      return "snapshot";
    case JobKind::kOther:
      break;
  }
  return "job";
}

const char* MemoryMethodName(MemoryMethod method) {
  switch (method) {
    case MemoryMethod::kVirtioMem:
      return "virtio-mem";
    case MemoryMethod::kDimm:
      return "dimm";
    case MemoryMethod::kBalloon:
      return "balloon";
    case MemoryMethod::kAuto:
      break;
  }
  return "auto";
}

const char* MemoryStepOpName(MemoryStep::Op op) {
  switch (op) {
    case MemoryStep::Op::kAttachDimm:
      return "attach";
    case MemoryStep::Op::kDetachDimm:
      return "detach";
    case MemoryStep::Op::kSetVirtioMemRequested:
      return "resize";
    case MemoryStep::Op::kSetBalloon:
      break;
  }
  return "balloon";
}

}  // namespace hotplug::backends

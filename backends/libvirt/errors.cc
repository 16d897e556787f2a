#include "backends/libvirt/errors.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <mutex>
#include <string>

namespace hotplug::backends::libvirt {
namespace {

bool Contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

void IgnoreError(void* /*user_data*/, virErrorPtr /*error*/) {}

}  // namespace

ErrorCode MapLibvirtError(int libvirt_code, std::string_view message) {
  if (Contains(message, "guest agent") || Contains(message, "agent is not")) {
    return ErrorCode::kGuestAgentUnavailable;
  }
  if (Contains(message, "rejected by the guest")) return ErrorCode::kGuestRejected;
  switch (libvirt_code) {
    case VIR_ERR_OK:
      return ErrorCode::kOk;
    case VIR_ERR_NO_DOMAIN:
      return ErrorCode::kDomainNotFound;
    case VIR_ERR_OPERATION_INVALID:
      return Contains(message, "not running") ? ErrorCode::kDomainNotRunning
                                              : ErrorCode::kOperationInvalid;
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_RPC:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_UNAVAILABLE:
      return ErrorCode::kHypervisorUnavailable;
    case VIR_ERR_OPERATION_TIMEOUT:
      return ErrorCode::kTimeout;
    case VIR_ERR_AGENT_UNRESPONSIVE:
    case VIR_ERR_AGENT_UNSYNCED:
      return ErrorCode::kGuestAgentUnavailable;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_OPERATION_UNSUPPORTED:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
    case VIR_ERR_CONFIG_UNSUPPORTED:
      return ErrorCode::kUnsupported;
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_OPERATION_FAILED:
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_DEVICE_MISSING:
    case VIR_ERR_OPERATION_ABORTED:
      return ErrorCode::kOperationInvalid;
    default:
      return ErrorCode::kInternal;
  }
}

Status StatusFromLastError(std::string_view what) {
  virErrorPtr error = virGetLastError();
  if (error == nullptr || error->code == VIR_ERR_OK) {
    return Status::Error(ErrorCode::kInternal,
                         std::string(what) + ": failed without a libvirt error");
  }
  const std::string message = error->message != nullptr ? error->message : "no message";
  return Status::Error(MapLibvirtError(error->code, message), std::string(what) + ": " + message,
                       error->code);
}

bool IsConnectionLost(ErrorCode code) { return code == ErrorCode::kHypervisorUnavailable; }

void InstallQuietErrorHandler() {
  static std::once_flag once;
  std::call_once(once, [] { virSetErrorFunc(nullptr, IgnoreError); });
}

}  // namespace hotplug::backends::libvirt

#include "backends/libvirt/errors.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <initializer_list>
#include <mutex>
#include <string>

namespace hotplug::backends::libvirt {
namespace {

bool Contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

void IgnoreError(void* /*user_data*/, virErrorPtr /*error*/) {}

// The rest of the table from virErrorNumber to ErrorCode: the numbers that mean each code
// here. Any other number is kInternal.
struct ErrorNumbers {
  ErrorCode code;
  std::initializer_list<int> numbers;
};
const ErrorNumbers kErrorTable[] = {
    {ErrorCode::kOk, {VIR_ERR_OK}},
    {ErrorCode::kDomainNotFound, {VIR_ERR_NO_DOMAIN}},
    {ErrorCode::kHypervisorUnavailable,
     {VIR_ERR_SYSTEM_ERROR, VIR_ERR_NO_CONNECT, VIR_ERR_RPC, VIR_ERR_INVALID_CONN,
      VIR_ERR_AUTH_FAILED, VIR_ERR_AUTH_UNAVAILABLE}},
    {ErrorCode::kTimeout, {VIR_ERR_OPERATION_TIMEOUT}},
    {ErrorCode::kGuestAgentUnavailable, {VIR_ERR_AGENT_UNRESPONSIVE, VIR_ERR_AGENT_UNSYNCED}},
    {ErrorCode::kUnsupported,
     {VIR_ERR_NO_SUPPORT, VIR_ERR_OPERATION_UNSUPPORTED, VIR_ERR_ARGUMENT_UNSUPPORTED,
      VIR_ERR_CONFIG_UNSUPPORTED}},
    {ErrorCode::kOperationInvalid,
     {VIR_ERR_OPERATION_INVALID, VIR_ERR_INVALID_ARG, VIR_ERR_OPERATION_FAILED, VIR_ERR_XML_ERROR,
      VIR_ERR_DEVICE_MISSING, VIR_ERR_OPERATION_ABORTED}},
};

}  // namespace

ErrorCode MapLibvirtError(int libvirt_code, std::string_view message) {
  // Told apart only by libvirt's wording: this is the edge where its text becomes a type.
  if (Contains(message, "guest agent") || Contains(message, "agent is not")) {
    return ErrorCode::kGuestAgentUnavailable;
  }
  if (Contains(message, "rejected by the guest")) return ErrorCode::kGuestRejected;
  if (libvirt_code == VIR_ERR_OPERATION_INVALID && Contains(message, "not running")) {
    return ErrorCode::kDomainNotRunning;
  }
  for (const ErrorNumbers& row : kErrorTable) {
    for (int number : row.numbers) {
      if (number == libvirt_code) return row.code;
    }
  }
  return ErrorCode::kInternal;
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

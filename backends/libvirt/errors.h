// How libvirt's errors become backends::Status values: one table from virErrorNumber to
// ErrorCode, keeping libvirt's own message and numeric code.
#pragma once

#include <string_view>

#include "backends/hypervisor.h"

namespace hotplug::backends::libvirt {

// The ErrorCode for a libvirt error number and message (some codes are told apart only by
// their message, e.g. "domain is not running" or "guest agent is not configured").
ErrorCode MapLibvirtError(int libvirt_code, std::string_view message);

// The calling thread's last libvirt error as a Status, its message prefixed with `what`
// (e.g. "virDomainSetVcpu(web-01, 3)"). kInternal when libvirt recorded no error.
Status StatusFromLastError(std::string_view what);

// True for errors that mean the connection itself is gone: the caller drops it and the
// next call reconnects.
bool IsConnectionLost(ErrorCode code);

// Replaces libvirt's default handler, which prints every error on stderr, with one that
// prints nothing: errors are reported as Status values instead. Idempotent, process-wide.
void InstallQuietErrorHandler();

}  // namespace hotplug::backends::libvirt

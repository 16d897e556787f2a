// The central process (--assign-nodes): the node assigner (controller/kube/node_assigner.h)
// with its informer, leader election, health probes and metrics, and no hypervisor. main.cc
// hands over to it after the flags are parsed and the stop signals blocked.
#pragma once

#include <signal.h>

#include "controller/flags.h"

namespace hotplug::controller {

// Runs until SIGTERM/SIGINT (blocked in `stop_signals` by the caller) or lost leadership;
// returns the process's exit code.
int RunCentral(const Flags& flags, const sigset_t& stop_signals);

}  // namespace hotplug::controller

// The hypervisor backends a binary offers: each is one --hypervisor KIND, with the flags of its
// own and how to build it. The process (main.cc) knows no backend by name: it asks the one
// place that registers them, RegisteredBackends(), which each executable defines once:
//   hotplug-operator          controller/shipped_backends.cc   libvirt
//   hotplug-operator-testing  tests/support/testing_binary/    libvirt and the in-memory fake
// so the shipped binary carries no test rig.
#pragma once

#include <memory>
#include <string>

#include "backends/hypervisor.h"
#include "controller/flags.h"

namespace hotplug::controller {

class HypervisorBackend {
 public:
  virtual ~HypervisorBackend() = default;
  // The --hypervisor value that selects it.
  virtual std::string kind() const = 0;
  // Adds its own flags (e.g. the fake's --fake-*) to those ParseFlags knows.
  virtual void AddFlags(FlagTable* /*table*/) {}
  // Whether one of its own flags was given: they need --hypervisor=<kind>.
  virtual bool FlagsGiven() const { return false; }
  // Its --help section ("" when it has no flags of its own).
  virtual std::string FlagHelp() const { return ""; }
  // The hypervisor the controller talks to, or null with `error`.
  virtual std::shared_ptr<backends::Hypervisor> Build(const Flags& flags, std::string* error) = 0;
};

// The real one: libvirt at --libvirt-uri.
std::unique_ptr<HypervisorBackend> MakeLibvirtBackend();

// The backends of this executable, the default (--hypervisor=libvirt) among them.
HypervisorBackends RegisteredBackends();

}  // namespace hotplug::controller

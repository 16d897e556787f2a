// --hypervisor=libvirt: the libvirt backend at --libvirt-uri.
#include "backends/libvirt/libvirt_hypervisor.h"
#include "controller/hypervisor_backend.h"
#include "controller/log.h"

namespace hotplug::controller {
namespace {

class LibvirtBackend final : public HypervisorBackend {
 public:
  std::string kind() const override { return "libvirt"; }
  std::shared_ptr<backends::Hypervisor> Build(const Flags& flags, std::string*) override {
    backends::libvirt::LibvirtOptions options;
    options.uri = flags.libvirt_uri;
    log::Info("hypervisor: libvirt", {{"uri", flags.libvirt_uri}});
    return std::make_shared<backends::libvirt::LibvirtHypervisor>(options);
  }
};

}  // namespace

std::unique_ptr<HypervisorBackend> MakeLibvirtBackend() {
  return std::make_unique<LibvirtBackend>();
}

}  // namespace hotplug::controller

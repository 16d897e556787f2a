// Operator overhead per vCPU plug (design §5): the backend's SetVcpu path against a bare
// virDomainSetVcpu on the same TCG guest in the same run, alternating, one sample per fresh
// vCPU (TCG cannot unplug and plug again), plus plug -> guest-online time from the serial log.
// It includes libvirt itself, as the only place outside backends/libvirt/: the bare call is
// the baseline being measured.
//
//   libvirt_setvcpu_bench [--samples N] [--max-vcpus M]
//     N samples of each path (default 20); guests of M vCPUs (default 64) are booted, as
//     many as the 2*N fresh slots need.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backends/libvirt/libvirt_hypervisor.h"
#include "tests/e2e/guest.h"

namespace {

using hotplug::e2e::Guest;
using hotplug::e2e::GuestReport;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> values, double percentile) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index =
      std::min(values.size() - 1, static_cast<size_t>(percentile / 100.0 * values.size()));
  return values[index];
}

double Ms(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

void IgnoreLibvirtError(void*, virErrorPtr) {}

struct ConnectionCloser {
  void operator()(virConnectPtr conn) const { virConnectClose(conn); }
};
struct DomainFreer {
  void operator()(virDomainPtr domain) const { virDomainFree(domain); }
};

}  // namespace

int main(int argc, char** argv) {
  unsigned samples = 20;
  unsigned max_vcpus = 64;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
      samples = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--max-vcpus") == 0 && i + 1 < argc) {
      max_vcpus = static_cast<unsigned>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--samples N] [--max-vcpus M]\n", argv[0]);
      return 2;
    }
  }
  if (samples == 0 || max_vcpus < 3) {
    std::fprintf(stderr, "need --samples >= 1 and --max-vcpus >= 3\n");
    return 2;
  }
  const std::string& skip = hotplug::e2e::SkipReason();
  if (!skip.empty()) {
    std::printf("SKIPPED: %s\n", skip.c_str());
    return 0;
  }
  virSetErrorFunc(nullptr, IgnoreLibvirtError);
  hotplug::backends::libvirt::LibvirtHypervisor backend;
  std::unique_ptr<virConnect, ConnectionCloser> bare_conn(virConnectOpen("qemu:///system"));
  if (!bare_conn) {
    std::fprintf(stderr, "virConnectOpen failed\n");
    return 1;
  }

  std::vector<double> backend_ms, bare_ms, online_s;
  unsigned guest_index = 0;
  while (backend_ms.size() < samples || bare_ms.size() < samples) {
    std::string error;
    const std::string name =
        "hotplug-bench-" + std::to_string(getpid()) + "-" + std::to_string(guest_index++);
    std::unique_ptr<Guest> guest =
        Guest::Boot(name,
                    {"--max-vcpus", std::to_string(max_vcpus), "--vcpus", "1", "--virtio-mem-mib",
                     "0", "--memory-mib", "512"},
                    &error);
    if (!guest) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::unique_ptr<virDomain, DomainFreer> domain(
        virDomainLookupByName(bare_conn.get(), name.c_str()));
    if (!domain) {
      std::fprintf(stderr, "lookup of %s failed\n", name.c_str());
      return 1;
    }
    for (unsigned id = 1; id < max_vcpus; ++id) {
      const bool use_backend = backend_ms.size() <= bare_ms.size();
      if ((use_backend ? backend_ms.size() : bare_ms.size()) >= samples) break;
      const auto start = Clock::now();
      bool ok = false;
      if (use_backend) {
        auto status = backend.SetVcpu(name, id, true, false);
        ok = status.ok();
        if (!ok) std::fprintf(stderr, "SetVcpu %u: %s\n", id, status.ToString().c_str());
      } else {
        const std::string map = std::to_string(id);
        ok = virDomainSetVcpu(domain.get(), map.c_str(), 1, VIR_DOMAIN_AFFECT_LIVE) == 0;
        if (!ok) std::fprintf(stderr, "virDomainSetVcpu %u failed\n", id);
      }
      const auto returned = Clock::now();
      if (!ok) return 1;
      (use_backend ? backend_ms : bare_ms).push_back(Ms(start, returned));
      auto online = guest->WaitForReport(
          [&](const GuestReport& report) { return report.online_cpus == id + 1; },
          std::chrono::seconds(60));
      if (!online) {
        std::fprintf(stderr, "guest %s did not online CPU %u within 60 s\n", name.c_str(), id + 1);
        return 1;
      }
      online_s.push_back(Ms(returned, Clock::now()) / 1000.0);
    }
  }

  const double backend_p50 = Percentile(backend_ms, 50), bare_p50 = Percentile(bare_ms, 50);
  std::printf("libvirt_setvcpu_bench: %u samples per path, guests of %u vCPUs (TCG), %u guest(s)\n",
              samples, max_vcpus, guest_index);
  std::printf("  backend SetVcpu       p50 %8.3f ms  p99 %8.3f ms\n", backend_p50,
              Percentile(backend_ms, 99));
  std::printf("  bare virDomainSetVcpu p50 %8.3f ms  p99 %8.3f ms\n", bare_p50,
              Percentile(bare_ms, 99));
  std::printf(
      "  ratio backend/bare    p50 %8.3f      p99 %8.3f\n",
      bare_p50 > 0 ? backend_p50 / bare_p50 : 0,
      Percentile(bare_ms, 99) > 0 ? Percentile(backend_ms, 99) / Percentile(bare_ms, 99) : 0);
  std::printf("  plug -> guest online  p50 %8.3f s   p99 %8.3f s   (n=%zu)\n",
              Percentile(online_s, 50), Percentile(online_s, 99), online_s.size());
  return 0;
}

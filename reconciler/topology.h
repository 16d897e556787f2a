// How a domain's vCPU ids group into cores and sockets. QEMU numbers x86 CPUs socket by
// socket, die by die, core by core, thread by thread, and libvirt's vCPU id is that number:
// id = ((socket * dies + die) * cores + core) * threads + thread. Without a <topology>
// libvirt starts QEMU with one vCPU per socket. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/hypervisor.h"

namespace hotplug::reconciler {

class CpuTopology {
 public:
  explicit CpuTopology(const backends::DomainObservation& domain);

  unsigned threads() const { return threads_; }                    // per core
  unsigned vcpus_per_socket() const { return vcpus_per_socket_; }  // dies x cores x threads
  bool given() const { return given_; }  // the domain XML has a <topology>
  unsigned CoreOf(unsigned id) const { return id / threads_; }
  unsigned SocketOf(unsigned id) const { return id / vcpus_per_socket_; }
  unsigned cores() const { return (maximum_ + threads_ - 1) / threads_; }
  // The vCPU ids of `core`, lowest first.
  std::vector<unsigned> ThreadsOf(unsigned core) const;
  // "2 sockets x 2 cores x 2 threads" (dies when more than one); "" when not given.
  std::string Describe() const;
  // "core 1 (vCPU 2-3)"
  std::string NameCore(unsigned core) const;

 private:
  bool given_ = false;
  unsigned maximum_ = 0;
  unsigned sockets_ = 0, dies_ = 1, cores_ = 1, threads_ = 1;
  unsigned vcpus_per_socket_ = 1;
};

// The threads per core of a topology as Describe() wrote it (status.vcpus.topology, the
// last pass's view): 1 when `described` is "" (no <topology>) or not Describe()'s text.
unsigned ThreadsPerCoreDescribed(const std::string& described);

// The vCPU ids of the cores that have some but not all of their threads in `effective`.
std::vector<unsigned> IncompleteCores(const CpuTopology& topology,
                                      const std::vector<unsigned>& effective);

}  // namespace hotplug::reconciler

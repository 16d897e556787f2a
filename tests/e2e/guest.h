// The e2e tests' real guest: scripts/lib/guest.sh boots a busybox guest through libvirt,
// and this side waits on its serial log (poll with a deadline, never a sleep) for the
// "HOTPLUG-GUEST cpus=... memtotal_kb=..." lines it prints when its CPUs or memory change.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hotplug::e2e {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `argv` (no shell) and collects its output.
CommandResult RunCommand(const std::vector<std::string>& argv);

// Runs scripts/lib/guest.sh with these arguments.
CommandResult RunGuestScript(const std::vector<std::string>& args);

// Why the e2e tests cannot run on this machine, or "" when they can: not root, or libvirtd
// and virtlogd could not be started. Computed once per process (starts the daemons).
const std::string& SkipReason();

// "0-2,4" -> 4.
unsigned CountCpuList(const std::string& list);

// One NUMA node as the guest's /sys/devices/system/node reports it.
struct GuestNode {
  std::string cpus;  // its online CPUs (guest numbers), "" for none
  unsigned online_cpus = 0;
  uint64_t memtotal_kb = 0;  // its MemTotal
};

// What the guest last printed on its serial console.
struct GuestReport {
  std::string cpus;                     // the guest's /sys/devices/system/cpu/online
  unsigned online_cpus = 0;             // how many that is
  uint64_t memtotal_kb = 0;             // MemTotal from /proc/meminfo
  std::map<unsigned, GuestNode> nodes;  // by node id
  // Per online guest CPU, "package.core" (physical_package_id, core_id): CPUs that share one
  // are threads of one core.
  std::map<unsigned, std::string> cores;
  // How many online CPUs each "package.core" has.
  std::map<std::string, unsigned> ThreadsPerCore() const;
};

// The report in one serial-console line, nullopt when the line is not a report.
std::optional<GuestReport> ParseReportLine(const std::string& line);

class Guest {
 public:
  // Boots `name` with guest.sh domain options (e.g. {"--max-vcpus", "8"}); nullptr and
  // `error` filled when it did not come up.
  static std::unique_ptr<Guest> Boot(const std::string& name,
                                     const std::vector<std::string>& options, std::string* error);
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;
  ~Guest();  // destroys (and undefines) the domain

  const std::string& name() const { return name_; }
  const std::string& serial_log() const { return serial_log_; }

  std::optional<GuestReport> LatestReport() const;

  // Polls the serial log every 20 ms until the latest report satisfies `condition`, or
  // `timeout` passes (nullopt).
  std::optional<GuestReport> WaitForReport(const std::function<bool(const GuestReport&)>& condition,
                                           std::chrono::milliseconds timeout) const;

 private:
  Guest(std::string name, std::string serial_log)
      : name_(std::move(name)), serial_log_(std::move(serial_log)) {}
  std::string name_;
  std::string serial_log_;
};

// A name no other test process uses: "hotplug-e2e-<suffix>-<pid>".
std::string UniqueDomainName(const std::string& suffix);

// `virsh` against qemu:///system.
CommandResult Virsh(const std::vector<std::string>& args);

// Polls `condition` every `interval` until it is true or `timeout` passes.
bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval = std::chrono::milliseconds(50));

}  // namespace hotplug::e2e

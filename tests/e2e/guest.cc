#include "tests/e2e/guest.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

namespace hotplug::e2e {
namespace {

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv) {
  CommandResult result;
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return result;
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return result;
  }
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  std::array<char, 4096> buffer;
  ssize_t got = 0;
  while ((got = read(pipe_fds[0], buffer.data(), buffer.size())) > 0) {
    result.output.append(buffer.data(), static_cast<size_t>(got));
  }
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

CommandResult RunGuestScript(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {HOTPLUG_GUEST_SCRIPT};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

CommandResult Virsh(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"virsh", "-q", "-c", "qemu:///system"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

const std::string& SkipReason() {
  static const std::string reason = [] {
    if (geteuid() != 0) {
      return std::string("e2e tests need root: they start libvirtd and boot guests");
    }
    CommandResult daemons = RunGuestScript({"ensure-daemons", "--timeout", "60"});
    if (daemons.exit_code != 0) {
      return "libvirtd/virtlogd could not be started: " + Trim(daemons.output);
    }
    CommandResult initramfs = RunGuestScript({"initramfs"});
    if (initramfs.exit_code != 0) {
      return "the guest kernel/initramfs could not be built: " + Trim(initramfs.output);
    }
    return std::string();
  }();
  if (!reason.empty()) std::fprintf(stderr, "\n*** SKIPPING e2e: %s ***\n\n", reason.c_str());
  return reason;
}

unsigned CountCpuList(const std::string& list) {
  unsigned count = 0;
  std::stringstream items(list);
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t dash = item.find('-');
    try {
      if (dash == std::string::npos) {
        std::stoul(item);
        ++count;
      } else {
        count += static_cast<unsigned>(std::stoul(item.substr(dash + 1)) -
                                       std::stoul(item.substr(0, dash)) + 1);
      }
    } catch (const std::exception&) {
    }
  }
  return count;
}

std::unique_ptr<Guest> Guest::Boot(const std::string& name, const std::vector<std::string>& options,
                                   std::string* error) {
  std::vector<std::string> args = {"boot", name};
  args.insert(args.end(), options.begin(), options.end());
  CommandResult booted = RunGuestScript(args);
  if (booted.exit_code != 0) {
    if (error != nullptr) *error = "guest.sh boot " + name + " failed: " + Trim(booted.output);
    RunGuestScript({"destroy", name});
    return nullptr;
  }
  // The last line of the output is the serial log path.
  std::string output = Trim(booted.output);
  const size_t newline = output.rfind('\n');
  std::string serial_log = newline == std::string::npos ? output : output.substr(newline + 1);
  return std::unique_ptr<Guest>(new Guest(name, serial_log));
}

Guest::~Guest() {
  if (RunGuestScript({"destroy", name_}).exit_code == 0) return;
  // A test may leave libvirtd down (the restart test): bring it back, then try again.
  RunGuestScript({"ensure-daemons", "--timeout", "60"});
  CommandResult retried = RunGuestScript({"destroy", name_});
  if (retried.exit_code != 0) {
    std::fprintf(stderr, "could not destroy guest %s: %s\n", name_.c_str(), retried.output.c_str());
  }
}

namespace {

// The value of " key=" in `line` up to the next space; "" when absent.
std::string Field(const std::string& line, const std::string& key) {
  const std::string marker = " " + key + "=";
  const size_t at = line.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return line.substr(start, line.find(' ', start) - start);
}

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, separator)) {
    if (!item.empty()) parts.push_back(item);
  }
  return parts;
}

// "0:0-1:262144;1::231664"
std::map<unsigned, GuestNode> ParseNodes(const std::string& text) {
  std::map<unsigned, GuestNode> nodes;
  for (const std::string& item : Split(text, ';')) {
    const size_t first = item.find(':');
    const size_t second = item.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    try {
      GuestNode node;
      node.cpus = item.substr(first + 1, second - first - 1);
      node.online_cpus = CountCpuList(node.cpus);
      node.memtotal_kb = std::stoull(item.substr(second + 1));
      nodes[static_cast<unsigned>(std::stoul(item.substr(0, first)))] = node;
    } catch (const std::exception&) {
    }
  }
  return nodes;
}

// "0:0.0;1:0.0;2:0.1"
std::map<unsigned, std::string> ParseCores(const std::string& text) {
  std::map<unsigned, std::string> cores;
  for (const std::string& item : Split(text, ';')) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos) continue;
    try {
      cores[static_cast<unsigned>(std::stoul(item.substr(0, colon)))] = item.substr(colon + 1);
    } catch (const std::exception&) {
    }
  }
  return cores;
}

}  // namespace

std::map<std::string, unsigned> GuestReport::ThreadsPerCore() const {
  std::map<std::string, unsigned> threads;
  for (const auto& [cpu, core] : cores) threads[core]++;
  return threads;
}

std::optional<GuestReport> ParseReportLine(const std::string& line) {
  // "HOTPLUG-GUEST cpus=0-2 memtotal_kb=493808 nodes=0:0-2:493808 topo=0:0.0;1:0.1 uptime=12.34"
  constexpr std::string_view kCpus = "HOTPLUG-GUEST cpus=";
  constexpr std::string_view kMemTotal = " memtotal_kb=";
  if (line.compare(0, kCpus.size(), kCpus) != 0) return std::nullopt;
  const size_t cpus_end = line.find(' ', kCpus.size());
  if (cpus_end == std::string::npos || line.compare(cpus_end, kMemTotal.size(), kMemTotal) != 0) {
    return std::nullopt;
  }
  GuestReport report;
  report.cpus = line.substr(kCpus.size(), cpus_end - kCpus.size());
  report.online_cpus = CountCpuList(report.cpus);
  const size_t digits = cpus_end + kMemTotal.size();
  size_t end = digits;
  while (end < line.size() && std::isdigit(static_cast<unsigned char>(line[end]))) ++end;
  if (end == digits) return std::nullopt;
  report.memtotal_kb = std::stoull(line.substr(digits, end - digits));
  report.nodes = ParseNodes(Field(line, "nodes"));
  report.cores = ParseCores(Field(line, "topo"));
  return report;
}

std::optional<GuestReport> Guest::LatestReport() const {
  std::ifstream log(serial_log_);
  std::string line;
  std::optional<GuestReport> latest;
  while (std::getline(log, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (auto report = ParseReportLine(line)) latest = report;
  }
  return latest;
}

std::optional<GuestReport> Guest::WaitForReport(
    const std::function<bool(const GuestReport&)>& condition,
    std::chrono::milliseconds timeout) const {
  std::optional<GuestReport> found;
  PollUntil(
      [&] {
        auto report = LatestReport();
        if (report && condition(*report)) found = report;
        return found.has_value();
      },
      timeout, std::chrono::milliseconds(20));
  return found;
}

std::string UniqueDomainName(const std::string& suffix) {
  return "hotplug-e2e-" + suffix + "-" + std::to_string(getpid());
}

bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace hotplug::e2e

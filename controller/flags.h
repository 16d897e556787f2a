// The operator's command line: every flag, its default, and the --help text that documents
// them. Parsing is separate from main so tests can check it.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hotplug::controller {

struct Flags {
  std::string kubeconfig;
  std::string ns;          // --namespace; "" = all namespaces
  std::string node_name;   // --node-name; default $NODE_NAME
  // --agent-lease-namespace: where agents renew hotplug-agent-<node> and the assigner reads
  // them; "" = agents renew none.
  std::string agent_lease_namespace;
  bool assign_nodes = false;  // --assign-nodes: the central node assigner, no reconciling
  int workers = 2;
  std::chrono::milliseconds resync_period{std::chrono::minutes(10)};
  // spec.*.autoscale: how often a load sample is taken, and how long the load is averaged.
  std::chrono::milliseconds autoscale_sample_period{5'000};
  std::chrono::milliseconds autoscale_load_window{15'000};
  // --watch-timeout: the timeoutSeconds each watch asks for (the server then ends it).
  std::chrono::milliseconds watch_timeout{std::chrono::minutes(5)};
  bool leader_elect = false;
  std::string leader_elect_namespace;  // "" = the config's namespace, else "default"
  std::string leader_elect_id = "hotplug-operator";
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
  std::string health_probe_bind_address = ":8081";
  std::string metrics_bind_address = ":8080";
  std::string hypervisor = "libvirt";
  std::string libvirt_uri = "qemu:///system";
  std::string hooks_dir;
  std::chrono::milliseconds hook_timeout{30'000};
  std::string log_level = "info";
  std::string standalone_dir;  // --standalone DIR; "" = Kubernetes
};

enum class ParseOutcome { kRun, kHelp, kVersion, kError };

// One flag: whether it may stand bare (booleans), and what takes its value (returns an error
// message, or "" when the value was taken).
using FlagSetter = std::function<std::string(const std::string&)>;
struct FlagSpec {
  bool boolean = false;
  FlagSetter set;
};
// By name, without the leading "--".
using FlagTable = std::map<std::string, FlagSpec>;

FlagSetter TextFlag(std::string* target);
FlagSetter IntegerFlag(int* target, int minimum);
FlagSetter DurationFlag(std::chrono::milliseconds* target, bool allow_zero);
FlagSetter BooleanFlag(bool* target);

class HypervisorBackend;
using HypervisorBackends = std::vector<std::unique_ptr<HypervisorBackend>>;

// Parses argv (without argv[0]). Accepts --flag=value and --flag value; booleans also bare
// (--leader-elect) or =true/=false. `backends` are the --hypervisor kinds this binary offers;
// their own flags are parsed into them. On kError, `error` says which flag and why.
ParseOutcome ParseFlags(const std::vector<std::string>& args, const HypervisorBackends& backends,
                        Flags* flags, std::string* error);

std::string HelpText(const HypervisorBackends& backends);

// "10m", "15s", "500ms", "1h30m", "2m0.5s", "0"; false on anything else.
bool ParseDuration(std::string_view text, std::chrono::milliseconds* out);

}  // namespace hotplug::controller

#include "controller/flags.h"

#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

#include "controller/hypervisor_backend.h"
#include "controller/log.h"

namespace hotplug::controller {

bool ParseDuration(std::string_view text, std::chrono::milliseconds* out) {
  if (text == "0") {
    *out = std::chrono::milliseconds(0);
    return true;
  }
  if (text.empty()) return false;
  double total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) i++;
    if (i == start) return false;
    double number;
    try {
      size_t used = 0;
      number = std::stod(std::string(text.substr(start, i - start)), &used);
      if (used != i - start) return false;
    } catch (...) {
      return false;
    }
    size_t unit_start = i;
    while (i < text.size() && !((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) i++;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit == "ms") {
      total_ms += number;
    } else if (unit == "s") {
      total_ms += number * 1000;
    } else if (unit == "m") {
      total_ms += number * 60'000;
    } else if (unit == "h") {
      total_ms += number * 3'600'000;
    } else {
      return false;
    }
  }
  *out = std::chrono::milliseconds(static_cast<int64_t>(total_ms + 0.5));
  return true;
}

FlagSetter TextFlag(std::string* target) {
  return [target](const std::string& value) {
    *target = value;
    return std::string();
  };
}

FlagSetter DurationFlag(std::chrono::milliseconds* target, bool allow_zero) {
  return [target, allow_zero](const std::string& value) {
    if (!ParseDuration(value, target)) {
      return "invalid duration \"" + value + "\" (use e.g. 500ms, 15s, 10m, 1h)";
    }
    if (!allow_zero && target->count() <= 0) return std::string("must be greater than 0");
    return std::string();
  };
}

FlagSetter IntegerFlag(int* target, int minimum) {
  return [target, minimum](const std::string& value) {
    char* end = nullptr;
    long parsed = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || parsed < minimum || parsed > 1'000'000) {
      return "invalid number \"" + value + "\" (an integer >= " + std::to_string(minimum) + ")";
    }
    *target = static_cast<int>(parsed);
    return std::string();
  };
}

FlagSetter BooleanFlag(bool* target) {
  return [target](const std::string& value) {
    if (value == "true" || value == "1") {
      *target = true;
    } else if (value == "false" || value == "0") {
      *target = false;
    } else {
      return "invalid boolean \"" + value + "\" (true or false)";
    }
    return std::string();
  };
}

namespace {

// The process's own flags; the backends add theirs.
FlagTable CommonFlags(Flags* flags) {
  return {
      {"kubeconfig", {false, TextFlag(&flags->kubeconfig)}},
      {"namespace", {false, TextFlag(&flags->ns)}},
      {"node-name", {false, TextFlag(&flags->node_name)}},
      {"agent-lease-namespace", {false, TextFlag(&flags->agent_lease_namespace)}},
      {"assign-nodes", {true, BooleanFlag(&flags->assign_nodes)}},
      {"workers", {false, IntegerFlag(&flags->workers, 1)}},
      {"resync-period", {false, DurationFlag(&flags->resync_period, true)}},
      {"autoscale-sample-period", {false, DurationFlag(&flags->autoscale_sample_period, false)}},
      {"autoscale-load-window", {false, DurationFlag(&flags->autoscale_load_window, false)}},
      {"watch-timeout", {false, DurationFlag(&flags->watch_timeout, false)}},
      {"leader-elect", {true, BooleanFlag(&flags->leader_elect)}},
      {"leader-elect-namespace", {false, TextFlag(&flags->leader_elect_namespace)}},
      {"leader-elect-id", {false, TextFlag(&flags->leader_elect_id)}},
      {"leader-elect-lease-duration", {false, DurationFlag(&flags->lease_duration, false)}},
      {"leader-elect-renew-deadline", {false, DurationFlag(&flags->renew_deadline, false)}},
      {"leader-elect-retry-period", {false, DurationFlag(&flags->retry_period, false)}},
      {"health-probe-bind-address", {false, TextFlag(&flags->health_probe_bind_address)}},
      {"metrics-bind-address", {false, TextFlag(&flags->metrics_bind_address)}},
      {"hypervisor", {false, TextFlag(&flags->hypervisor)}},
      {"libvirt-uri", {false, TextFlag(&flags->libvirt_uri)}},
      {"hooks-dir", {false, TextFlag(&flags->hooks_dir)}},
      {"hook-timeout", {false, DurationFlag(&flags->hook_timeout, false)}},
      {"log-level", {false, TextFlag(&flags->log_level)}},
      {"standalone", {false, TextFlag(&flags->standalone_dir)}},
  };
}

// Hands each argument to its flag. kRun when every one was taken.
ParseOutcome TakeArguments(const std::vector<std::string>& args, const FlagTable& specs,
                           std::string* error) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") return ParseOutcome::kHelp;
    if (arg == "--version") return ParseOutcome::kVersion;
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      *error = "unexpected argument \"" + arg + "\" (flags start with --; see --help)";
      return ParseOutcome::kError;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto spec = specs.find(name);
    if (spec == specs.end()) {
      *error = "unknown flag --" + name + " (see --help)";
      return ParseOutcome::kError;
    }
    if (!value) {
      if (spec->second.boolean) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        *error = "flag --" + name + " needs a value";
        return ParseOutcome::kError;
      }
    }
    if (std::string problem = spec->second.set(*value); !problem.empty()) {
      *error = "--" + name + ": " + problem;
      return ParseOutcome::kError;
    }
  }
  return ParseOutcome::kRun;
}

// "libvirt or fake": the kinds `backends` offers.
std::string Kinds(const HypervisorBackends& backends) {
  std::string kinds;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (i > 0) kinds += i + 1 == backends.size() ? " or " : ", ";
    kinds += backends[i]->kind();
  }
  return kinds;
}

// --hypervisor names a backend of this binary, and only the chosen one's own flags are given.
std::string CheckHypervisor(const HypervisorBackends& backends, const Flags& flags) {
  bool known = false;
  for (const auto& backend : backends) {
    if (backend->kind() == flags.hypervisor) {
      known = true;
    } else if (backend->FlagsGiven()) {
      return "--" + backend->kind() + "-* flags need --hypervisor=" + backend->kind();
    }
  }
  if (known) return "";
  return "--hypervisor: must be " + Kinds(backends) + ", not \"" + flags.hypervisor + "\"";
}

// The rules that involve more than one flag; "" when they hold.
std::string CheckCrossFlags(const Flags& flags) {
  if (flags.assign_nodes && !flags.node_name.empty()) {
    return "--assign-nodes serves every node; it cannot be used with --node-name";
  }
  if (flags.assign_nodes && flags.agent_lease_namespace.empty()) {
    return "--assign-nodes needs --agent-lease-namespace (where the agents' Leases are)";
  }
  if (flags.watch_timeout < std::chrono::seconds(1)) {
    return "--watch-timeout: must be at least 1s (the API takes whole seconds)";
  }
  if (!(flags.renew_deadline < flags.lease_duration)) {
    return "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration";
  }
  if (!(flags.retry_period < flags.renew_deadline)) {
    return "--leader-elect-retry-period must be shorter than --leader-elect-renew-deadline";
  }
  if (log::Level level; !log::ParseLevel(flags.log_level, &level)) {
    return "--log-level: must be debug, info, warn or error, not \"" + flags.log_level + "\"";
  }
  return "";
}

}  // namespace

ParseOutcome ParseFlags(const std::vector<std::string>& args, const HypervisorBackends& backends,
                        Flags* flags, std::string* error) {
  if (const char* node = std::getenv("NODE_NAME")) flags->node_name = node;
  FlagTable specs = CommonFlags(flags);
  for (const auto& backend : backends) backend->AddFlags(&specs);
  if (ParseOutcome outcome = TakeArguments(args, specs, error); outcome != ParseOutcome::kRun) {
    return outcome;
  }
  *error = CheckHypervisor(backends, *flags);
  if (error->empty()) *error = CheckCrossFlags(*flags);
  return error->empty() ? ParseOutcome::kRun : ParseOutcome::kError;
}

namespace {

// The help of the Kubernetes flags.
const char* KubernetesHelp() {
  return "Kubernetes:\n"
         "  --kubeconfig PATH        kubeconfig to use. Default: $KUBECONFIG, else the in-cluster\n"
         "                           service account, else ~/.kube/config.\n"
         "  --namespace NS           watch ElasticVMs in this namespace only. Default: all.\n"
         "  --node-name NODE         the agent of NODE: list and watch only the ElasticVMs\n"
         "                           labelled hotplug.dev/node=NODE (the API server filters\n"
         "                           them; --assign-nodes keeps the label equal to\n"
         "                           spec.nodeName), and of those reconcile the ones whose\n"
         "                           spec.nodeName is NODE or empty. One moved to another node is\n"
         "                           released (Ready=False, NodeChanged) once no pass of it runs.\n"
         "                           Default: $NODE_NAME; empty: every ElasticVM in scope.\n"
         "  --agent-lease-namespace NS   with --node-name: renew the Lease\n"
         "                           hotplug-agent-NODE in NS every 10s (40s duration), which\n"
         "                           tells --assign-nodes this node has an agent. With\n"
         "                           --assign-nodes: where to read those Leases. Default: none.\n"
         "  --assign-nodes           run the central node assigner instead of reconciling: keep\n"
         "                           each ElasticVM's hotplug.dev/node label equal to its\n"
         "                           spec.nodeName (a move waits for the old agent's release) and\n"
         "                           set Ready=False, reason NoNode or NoAgent, on those no agent\n"
         "                           serves. Use with --leader-elect; needs\n"
         "                           --agent-lease-namespace; no hypervisor is opened.\n"
         "  --workers N              reconcile up to N objects at once (one worker per object at\n"
         "                           a time). Default: 2.\n"
         "  --resync-period D        look at every object again this often. 0 disables.\n"
         "                           Default: 10m.\n"
         "  --autoscale-sample-period D   how often an ElasticVM with spec.*.autoscale samples\n"
         "                           its guest's load (and decides). Default: 5s.\n"
         "  --autoscale-load-window D     the load is averaged over this long. Default: 15s.\n"
         "  --watch-timeout D        ask the API server to end each watch after D (whole\n"
         "                           seconds, at least 1s); the informer then resumes from the\n"
         "                           last resourceVersion it saw. Default: 5m.\n"
         "  --leader-elect           run workers only while holding a coordination.k8s.io/v1\n"
         "                           Lease; the process exits with code 1 when it loses it.\n"
         "  --leader-elect-namespace NS   namespace of the Lease. Default: the service\n"
         "                           account's or the kubeconfig context's namespace, else\n"
         "                           \"default\".\n"
         "  --leader-elect-id NAME   name of the Lease. Default: hotplug-operator.\n"
         "  --leader-elect-lease-duration D   how long a non-renewed lease blocks others.\n"
         "                           Default: 15s.\n"
         "  --leader-elect-renew-deadline D   how long the leader keeps trying to renew before\n"
         "                           it gives up leadership. Default: 10s.\n"
         "  --leader-elect-retry-period D     time between attempts. Default: 2s.\n";
}

}  // namespace

std::string HelpText(const HypervisorBackends& backends) {
  std::ostringstream out;
  out << "hotplug-operator: hot-plugs vCPUs and memory of running libvirt/QEMU VMs so that\n"
         "they match their ElasticVM objects (hotplug.dev/v1alpha1).\n\n"
         "Usage: hotplug-operator [flags]     (--flag=value or --flag value)\n\n";
  out << KubernetesHelp();
  out << "\nEndpoints:\n"
         "  --health-probe-bind-address ADDR   serve /healthz and /readyz (ready once the\n"
         "                           cache has synced) on ADDR, e.g. :8081 or 127.0.0.1:0 (the\n"
         "                           port bound is logged). \"0\" disables. Default: :8081.\n"
         "  --metrics-bind-address ADDR   serve Prometheus metrics on ADDR. \"0\" disables.\n"
         "                           Default: :8080.\n"
         "\nHypervisor:\n"
         "  --hypervisor KIND        "
      << Kinds(backends)
      << ". Default: libvirt.\n"
         "  --libvirt-uri URI        libvirt connection. Default: qemu:///system.\n"
         "  --hooks-dir DIR          run executables before_set_vcpu, after_set_vcpu,\n"
         "                           before_set_memory, after_set_memory from DIR around each\n"
         "                           step. Default: none.\n"
         "  --hook-timeout D         kill a hook that runs longer. Default: 30s.\n";
  for (const auto& backend : backends) out << backend->FlagHelp();
  out << "\nStandalone:\n"
         "  --standalone DIR         no Kubernetes: read ElasticVMs from the YAML files in DIR\n"
         "                           and write their status back there.\n";
  out << "\nOther:\n"
         "  --log-level LEVEL        debug, info, warn or error. Default: info. Logs are JSON\n"
         "                           lines on stderr.\n"
         "  --help                   this text.\n"
         "  --version                the version.\n"
         "\nSIGTERM/SIGINT: running passes stop after the step in flight and write their status;\n"
         "the process exits 0 (1 if they did not finish within 25s). Bad flags exit 2.\n";
  return out.str();
}

}  // namespace hotplug::controller

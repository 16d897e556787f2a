// The command line: durations, every flag's parsing, and the errors that exit 2.
#include "controller/flags.h"

#include <gtest/gtest.h>

namespace hotplug::controller {
namespace {

using namespace std::chrono_literals;

TEST(ParseDurationTest, AcceptsGoStyleDurations) {
  struct Case {
    const char* text;
    std::chrono::milliseconds want;
  };
  for (const Case& c : {Case{"10m", 600'000ms}, Case{"15s", 15'000ms}, Case{"500ms", 500ms},
                        Case{"1h30m", 5'400'000ms}, Case{"1.5s", 1500ms}, Case{"0", 0ms},
                        Case{"2m0.5s", 120'500ms}}) {
    std::chrono::milliseconds got{-1};
    EXPECT_TRUE(ParseDuration(c.text, &got)) << c.text;
    EXPECT_EQ(got, c.want) << c.text;
  }
}

TEST(ParseDurationTest, RejectsWhatIsNotADuration) {
  for (const char* text : {"", "10", "m", "10x", "-5s", "1.2.3s", "s10"}) {
    std::chrono::milliseconds got;
    EXPECT_FALSE(ParseDuration(text, &got)) << text;
  }
}

ParseOutcome Parse(std::vector<std::string> args, Flags* flags, std::string* error,
                   FlagFeatures features = {.libvirt = true}) {
  return ParseFlags(args, features, flags, error);
}

TEST(ParseFlagsTest, DefaultsMatchTheHelp) {
  Flags flags;
  std::string error;
  ASSERT_EQ(Parse({}, &flags, &error), ParseOutcome::kRun) << error;
  EXPECT_EQ(flags.workers, 2);
  EXPECT_EQ(flags.resync_period, 600'000ms);
  EXPECT_EQ(flags.lease_duration, 15s);
  EXPECT_EQ(flags.renew_deadline, 10s);
  EXPECT_EQ(flags.retry_period, 2s);
  EXPECT_EQ(flags.leader_elect_id, "hotplug-operator");
  EXPECT_EQ(flags.health_probe_bind_address, ":8081");
  EXPECT_EQ(flags.hypervisor, "libvirt");
  EXPECT_EQ(flags.libvirt_uri, "qemu:///system");
  EXPECT_EQ(flags.hook_timeout, 30s);
  EXPECT_FALSE(flags.leader_elect);
}

TEST(ParseFlagsTest, TakesBothSpellingsOfValues) {
  Flags flags;
  std::string error;
  ASSERT_EQ(Parse({"--workers=8", "--namespace", "vms", "--leader-elect", "--resync-period=30s",
                   "--hypervisor", "fake", "--fake-domains=3", "--node-name=host-a"},
                  &flags, &error),
            ParseOutcome::kRun)
      << error;
  EXPECT_EQ(flags.workers, 8);
  EXPECT_EQ(flags.ns, "vms");
  EXPECT_TRUE(flags.leader_elect);
  EXPECT_EQ(flags.resync_period, 30s);
  EXPECT_EQ(flags.fake_domains, 3);
  EXPECT_EQ(flags.node_name, "host-a");
}

TEST(ParseFlagsTest, BadFlagsSayWhatIsWrong) {
  struct Case {
    std::vector<std::string> args;
    const char* mentions;
  };
  for (const Case& c : {
           Case{{"--bogus"}, "unknown flag --bogus"},
           Case{{"--workers=0"}, "--workers"},
           Case{{"--workers=many"}, "--workers"},
           Case{{"--resync-period=10"}, "--resync-period"},
           Case{{"--hypervisor=xen"}, "--hypervisor"},
           Case{{"--log-level=loud"}, "--log-level"},
           Case{{"--leader-elect-renew-deadline=20s"}, "renew-deadline"},
           Case{{"--fake-domains=2"}, "--hypervisor=fake"},
           Case{{"--kubeconfig"}, "needs a value"},
           Case{{"stray"}, "unexpected argument"},
           Case{{"--metrics-bind-address=:9090"}, "unknown flag"},
       }) {
    Flags flags;
    std::string error;
    EXPECT_EQ(Parse(c.args, &flags, &error), ParseOutcome::kError) << c.args[0];
    EXPECT_NE(error.find(c.mentions), std::string::npos) << error;
  }
}

TEST(ParseFlagsTest, HelpAndVersion) {
  Flags flags;
  std::string error;
  EXPECT_EQ(Parse({"--help"}, &flags, &error), ParseOutcome::kHelp);
  EXPECT_EQ(Parse({"--version"}, &flags, &error), ParseOutcome::kVersion);
}

TEST(HelpTextTest, ListsEveryFlagItAccepts) {
  std::string help = HelpText({.libvirt = true});
  for (const char* flag :
       {"--kubeconfig", "--namespace", "--node-name", "--workers", "--resync-period",
        "--leader-elect", "--leader-elect-namespace", "--leader-elect-id",
        "--leader-elect-lease-duration", "--leader-elect-renew-deadline",
        "--leader-elect-retry-period", "--health-probe-bind-address", "--hypervisor",
        "--libvirt-uri", "--hooks-dir", "--hook-timeout", "--log-level", "--help", "--version",
        "--fake-domains", "--fake-domains-file", "--fake-call-log", "--fake-vcpu-latency"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
  // Not offered until the metrics server is wired.
  EXPECT_EQ(help.find("--metrics-bind-address"), std::string::npos);
  EXPECT_EQ(help.find("--standalone"), std::string::npos);
}

TEST(ParseFlagsTest, AssignNodesIsTheCentralModeAndReadsTheAgentsLeases) {
  Flags flags;
  std::string error;
  ASSERT_EQ(Parse({"--assign-nodes", "--agent-lease-namespace=hotplug-system"}, &flags, &error,
                  {}),
            ParseOutcome::kRun)
      << error << " (no hypervisor is opened, so a build without libvirt runs it)";
  EXPECT_TRUE(flags.assign_nodes);
  EXPECT_EQ(flags.agent_lease_namespace, "hotplug-system");

  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const Case refused[] = {
      {{"--assign-nodes"}, "needs --agent-lease-namespace"},
      {{"--assign-nodes", "--agent-lease-namespace=ns", "--node-name=a"}, "--node-name"},
  };
  for (const Case& c : refused) {
    Flags other;
    EXPECT_EQ(Parse(c.args, &other, &error), ParseOutcome::kError);
    EXPECT_NE(error.find(c.says), std::string::npos) << error;
  }
  std::string help = HelpText({.libvirt = true});
  for (const char* flag : {"--assign-nodes", "--agent-lease-namespace"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace hotplug::controller

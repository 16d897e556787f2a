// The command line: durations, every flag's parsing, and the errors that exit 2.
#include "controller/flags.h"

#include <gtest/gtest.h>

#include "controller/hypervisor_backend.h"

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

// A backend of the kind `kind`, with one flag of its own when `flag` is given (as the fake's
// --fake-domains): what ParseFlags and HelpText see of a registered backend.
class StubBackend final : public HypervisorBackend {
 public:
  StubBackend(std::string kind, std::string flag)
      : kind_(std::move(kind)), flag_(std::move(flag)) {}
  std::string kind() const override { return kind_; }
  void AddFlags(FlagTable* table) override {
    if (!flag_.empty()) (*table)[flag_] = {false, IntegerFlag(&value_, 0)};
  }
  bool FlagsGiven() const override { return value_ > 0; }
  std::string FlagHelp() const override {
    return flag_.empty() ? "" : "  --" + flag_ + " N   the stub's own flag.\n";
  }
  std::shared_ptr<backends::Hypervisor> Build(const Flags&, std::string*) override {
    return nullptr;
  }
  int value() const { return value_; }

 private:
  std::string kind_;
  std::string flag_;
  int value_ = 0;
};

// As hotplug-operator-testing registers them: libvirt, and one with a flag of its own.
HypervisorBackends TestingBackends() {
  HypervisorBackends backends;
  backends.push_back(std::make_unique<StubBackend>("libvirt", ""));
  backends.push_back(std::make_unique<StubBackend>("fake", "fake-domains"));
  return backends;
}

ParseOutcome Parse(std::vector<std::string> args, Flags* flags, std::string* error) {
  return ParseFlags(args, TestingBackends(), flags, error);
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
                   "--hypervisor", "fake", "--node-name=host-a"},
                  &flags, &error),
            ParseOutcome::kRun)
      << error;
  EXPECT_EQ(flags.workers, 8);
  EXPECT_EQ(flags.ns, "vms");
  EXPECT_TRUE(flags.leader_elect);
  EXPECT_EQ(flags.resync_period, 30s);
  EXPECT_EQ(flags.hypervisor, "fake");
  EXPECT_EQ(flags.node_name, "host-a");
}

TEST(ParseFlagsTest, ABackendsOwnFlagsGoToIt) {
  HypervisorBackends backends = TestingBackends();
  Flags flags;
  std::string error;
  ASSERT_EQ(ParseFlags({"--hypervisor=fake", "--fake-domains", "3"}, backends, &flags, &error),
            ParseOutcome::kRun)
      << error;
  EXPECT_EQ(static_cast<StubBackend&>(*backends[1]).value(), 3);
}

TEST(ParseFlagsTest, OnlyTheRegisteredBackendsExist) {
  HypervisorBackends shipped;
  shipped.push_back(std::make_unique<StubBackend>("libvirt", ""));
  Flags flags;
  std::string error;
  EXPECT_EQ(ParseFlags({"--hypervisor=fake"}, shipped, &flags, &error), ParseOutcome::kError);
  EXPECT_EQ(error, "--hypervisor: must be libvirt, not \"fake\"");
  EXPECT_EQ(ParseFlags({"--fake-domains=1"}, shipped, &flags, &error), ParseOutcome::kError);
  EXPECT_NE(error.find("unknown flag --fake-domains"), std::string::npos) << error;
  std::string help = HelpText(shipped);
  EXPECT_EQ(help.find("fake"), std::string::npos) << help;
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
           Case{{"--fake-domains=2"}, "--fake-* flags need --hypervisor=fake"},
           Case{{"--kubeconfig"}, "needs a value"},
           Case{{"stray"}, "unexpected argument"},
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
  std::string help = HelpText(TestingBackends());
  for (const char* flag : {"--kubeconfig",
                           "--namespace",
                           "--node-name",
                           "--workers",
                           "--resync-period",
                           "--leader-elect",
                           "--leader-elect-namespace",
                           "--leader-elect-id",
                           "--leader-elect-lease-duration",
                           "--leader-elect-renew-deadline",
                           "--leader-elect-retry-period",
                           "--health-probe-bind-address",
                           "--hypervisor",
                           "--libvirt-uri",
                           "--hooks-dir",
                           "--hook-timeout",
                           "--log-level",
                           "--help",
                           "--version",
                           "--metrics-bind-address",
                           "--standalone",
                           "libvirt or fake",
                           "--fake-domains N"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

TEST(ParseFlagsTest, AssignNodesIsTheCentralModeAndReadsTheAgentsLeases) {
  Flags flags;
  std::string error;
  ASSERT_EQ(Parse({"--assign-nodes", "--agent-lease-namespace=hotplug-system"}, &flags, &error),
            ParseOutcome::kRun)
      << error;
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
  std::string help = HelpText(TestingBackends());
  for (const char* flag : {"--assign-nodes", "--agent-lease-namespace"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace hotplug::controller

// Production VM shapes on ONE real guest (issue 16, items 1-6): a persistent q35 TCG guest
// with 2 sockets x 2 cores x 2 threads, one socket per NUMA cell (cell 0: vCPU 0-3, 384 MiB;
// cell 1: vCPU 4-7, 256 MiB), its boot core's vCPUs pinned to host CPUs 0 and 1. One boot
// serves every check, in an order that keeps TCG's re-plug danger (design §4) for the end:
//   - topology: whole cores, both threads in consecutive calls, the guest's own view of every
//     core with both threads; a count that is not whole cores refused; a core's second
//     thread refused by QEMU leaves that core incomplete and the retry completes just it;
//   - NUMA: cores round-robin over the cells as the guest's /sys/devices/system/node reports;
//     a DIMM to the cell with the least memory, then to spec.memory.numaNode;
//   - pinning: each plugged vCPU pinned from hostCPUs 0-1 first, read back from libvirt;
//   - guest OS: Windows libosinfo metadata set on the live domain: an unplug refused before
//     any call;
//   - one owner: a second ElasticVM through a second connection is DomainClaimed; the owner's
//     release hands the domain over;
//   - last, a whole-core unplug in the reverse order (each thread a TCG unplug timeout).
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "crd/elasticvm.h"
#include "crd/quantity.h"
#include "reconciler/clock.h"
#include "reconciler/reconciler.h"
#include "tests/e2e/e2e_test_support.h"

namespace hotplug::e2e {
namespace {

using backends::libvirt::LibvirtHypervisor;
using namespace std::chrono_literals;

constexpr const char* kLibosinfo = "http://libosinfo.org/xmlns/libvirt/domain/1.0";

// `virsh vcpuinfo`: each running vCPU's thread affinity ("-y" -> "1"), as the kernel has it.
std::map<unsigned, std::string> ThreadAffinity(const std::string& domain) {
  std::map<unsigned, std::string> affinity;
  std::stringstream lines(Virsh({"vcpuinfo", domain}).output);
  std::string line;
  int vcpu = -1;
  while (std::getline(lines, line)) {
    if (line.rfind("VCPU:", 0) == 0) vcpu = std::stoi(line.substr(5));
    if (line.rfind("CPU Affinity:", 0) == 0 && vcpu >= 0) {
      std::string map = line.substr(line.find(':') + 1);
      map.erase(0, map.find_first_not_of(' '));
      std::string cpus;
      for (size_t i = 0; i < map.size(); ++i) {
        if (map[i] == 'y') cpus += (cpus.empty() ? "" : ",") + std::to_string(i);
      }
      affinity[static_cast<unsigned>(vcpu)] = cpus;
    }
  }
  return affinity;
}

// `virsh vcpupin --live|--config`: each vCPU's pin as libvirt keeps it.
std::map<unsigned, std::string> PinTable(const std::string& domain, const char* which) {
  std::map<unsigned, std::string> pins;
  std::stringstream lines(Virsh({"vcpupin", domain, which}).output);
  unsigned id = 0;
  std::string cpus;
  while (lines >> id >> cpus) pins[id] = cpus;
  return pins;
}

crd::ElasticVM Object(const std::string& name, const std::string& domain) {
  crd::ElasticVM object;
  object.metadata.name = name;
  object.metadata.namespace_ = "default";
  object.metadata.uid = "uid-" + name;
  object.metadata.generation = 1;
  object.spec.domain = domain;
  object.spec.persist = true;
  return object;
}

const crd::Condition& Cond(const crd::ElasticVM& object, const char* type) {
  static const crd::Condition none;
  const crd::Condition* c = crd::FindCondition(object.status, type);
  return c != nullptr ? *c : none;
}

using StepList = std::vector<std::pair<std::string, int64_t>>;

StepList Steps(const reconciler::Result& result) {
  StepList steps;
  for (const auto& step : result.steps) steps.emplace_back(step.operation, step.id);
  return steps;
}

class VmShapesE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    std::string error;
    // Nehalem: an Intel CPU model, so that the guest's Linux shows threads as threads.
    const auto start = std::chrono::steady_clock::now();
    guest_ = Guest::Boot("shapes-" + std::to_string(getpid()),
                         {"--machine", "q35", "--max-vcpus", "8", "--vcpus", "2", "--topology",
                          "2x2x2", "--cpu-model", "Nehalem", "--numa", "0-3:384,4-7:256",
                          "--vcpupin", "0:0,1:1", "--virtio-mem-mib", "0", "--persistent"},
                         &error);
    ASSERT_NE(guest_, nullptr) << error;
    Measure("shapes_guest_boot_s", MillisecondsSince(start) / 1000.0, "s");
    object_ = Object("shapes", guest_->name());
    object_.spec.cpu.pinning = crd::PinningSpec{crd::PinningPolicy::kDealt, "0-1"};
    rival_ = Object("rival", guest_->name());
  }

  reconciler::Result Pass(reconciler::Reconciler& reconciler, crd::ElasticVM& object) {
    reconciler::Result result = reconciler.Reconcile(object);
    object.status = result.status;
    for (const auto& event : result.events) {
      std::printf("event %s/%s: %s\n", object.metadata.name.c_str(), event.reason.c_str(),
                  event.message.c_str());
    }
    return result;
  }
  reconciler::Result Pass() { return Pass(agent_a_, object_); }
  void SetVcpus(std::optional<int64_t> vcpus, std::optional<int64_t> sockets) {
    object_.spec.cpu.vcpus = vcpus;
    object_.spec.cpu.sockets = sockets;
    ++object_.metadata.generation;
  }
  const crd::Condition& Synced() { return Cond(object_, reconciler::condition::kVcpusSynced); }
  CommandResult Monitor(const std::string& command) {
    return Virsh({"qemu-monitor-command", guest_->name(), command});
  }
  std::string Claim(bool inactive) {
    return Virsh({"metadata", guest_->name(), "https://hotplug.dev/xmlns/owner",
                  inactive ? "--config" : "--live"})
        .output;
  }

  // The guest reports `per_node` online CPUs in its NUMA nodes 0 and 1, every core with
  // both threads.
  std::optional<GuestReport> GuestShows(std::pair<unsigned, unsigned> per_node) {
    auto report = guest_->WaitForReport(
        [&](const GuestReport& r) {
          if (r.nodes.size() != 2 || r.nodes.at(0).online_cpus != per_node.first ||
              r.nodes.at(1).online_cpus != per_node.second) {
            return false;
          }
          if (r.cores.size() != per_node.first + per_node.second) return false;
          for (const auto& [core, threads] : r.ThreadsPerCore()) {
            if (threads != 2) return false;
          }
          return true;
        },
        90s);
    if (report) Print(*report);
    return report;
  }
  static void Print(const GuestReport& report) {
    std::string cores;
    for (const auto& [core, threads] : report.ThreadsPerCore()) {
      cores += " " + core + "x" + std::to_string(threads);
    }
    std::printf(
        "guest: cpus=%s, node 0: cpus=%s %lu kB, node 1: cpus=%s %lu kB; "
        "package.core x threads:%s\n",
        report.cpus.c_str(), report.nodes.at(0).cpus.c_str(),
        static_cast<unsigned long>(report.nodes.at(0).memtotal_kb), report.nodes.at(1).cpus.c_str(),
        static_cast<unsigned long>(report.nodes.at(1).memtotal_kb), cores.c_str());
  }
  // libvirt's word on every enabled vCPU's pin: thread affinity, live and persistent pins,
  // each the one status.vcpus.pins shows and one host CPU of 0-1.
  void ExpectPinsReadBack() {
    const auto affinity = ThreadAffinity(guest_->name());
    const auto live = PinTable(guest_->name(), "--live");
    const auto config = PinTable(guest_->name(), "--config");
    ASSERT_TRUE(object_.status.vcpus.has_value());
    for (const auto& [id, cpus] : object_.status.vcpus->pins) {
      const auto vcpu = static_cast<unsigned>(id);
      std::printf("vCPU %u: status pin %s, thread affinity %s, live pin %s, persistent %s\n", vcpu,
                  cpus.c_str(), affinity.count(vcpu) ? affinity.at(vcpu).c_str() : "-",
                  live.count(vcpu) ? live.at(vcpu).c_str() : "-",
                  config.count(vcpu) ? config.at(vcpu).c_str() : "-");
      EXPECT_TRUE(cpus == "0" || cpus == "1") << "vCPU " << vcpu << ": " << cpus;
      EXPECT_EQ(affinity.count(vcpu) ? affinity.at(vcpu) : "", cpus) << "vCPU " << vcpu;
      EXPECT_EQ(live.count(vcpu) ? live.at(vcpu) : "", cpus) << "vCPU " << vcpu;
      EXPECT_EQ(config.count(vcpu) ? config.at(vcpu) : "", cpus) << "vCPU " << vcpu;
    }
  }
  uint64_t NodeKb(unsigned node) { return guest_->LatestReport()->nodes.at(node).memtotal_kb; }
  // Waits until the guest's node `node` has at least `kb` MemTotal.
  bool NodeGrows(unsigned node, uint64_t kb) {
    auto report = guest_->WaitForReport(
        [&](const GuestReport& r) {
          return r.nodes.count(node) && r.nodes.at(node).memtotal_kb >= kb;
        },
        60s);
    if (report) Print(*report);
    return report.has_value();
  }

  void CheckCoresGoRoundRobinOverTheCells();
  void CheckAQemuRefusalLeavesOneCoreIncomplete();
  void CheckDimmsLandPerCell();
  void CheckWindowsMetadataRefusesAnUnplug();
  void CheckTheOwnerHandsTheDomainOver();
  void CheckACoreIsUnpluggedInTheReverseOrder();

  std::unique_ptr<Guest> guest_;
  LibvirtHypervisor backend_a_, backend_b_;  // two connections: two agents
  reconciler::SystemClock clock_;
  static reconciler::Options Agent(const char* node) {
    reconciler::Options options;
    options.claim_manager = std::string("node/") + node;
    return options;
  }
  reconciler::Options options_a_ = Agent("agent-a"), options_b_ = Agent("agent-b");
  reconciler::Reconciler agent_a_{backend_a_, clock_, options_a_};
  reconciler::Reconciler agent_b_{backend_b_, clock_, options_b_};
  crd::ElasticVM object_, rival_;
  std::optional<backends::DomainClaim> claim_;  // object_'s, from its first pass
};

void VmShapesE2E::CheckCoresGoRoundRobinOverTheCells() {
  // sockets: 1 = 4 vCPUs: one more core, from the emptier cell 1 (core 2, vCPU 4-5).
  SetVcpus(std::nullopt, 1);
  auto start = std::chrono::steady_clock::now();
  reconciler::Result grown = Pass();
  claim_ = grown.claim;
  Measure("shapes_claim_pin_plug_core_pass_ms", MillisecondsSince(start), "ms");
  EXPECT_EQ(Steps(grown), (StepList{{"pin", 4}, {"plug", 4}, {"pin", 5}, {"plug", 5}}));
  EXPECT_EQ(Synced().status, "True") << Synced().message;
  EXPECT_EQ(object_.status.vcpus->desired, 4);
  EXPECT_EQ(object_.status.vcpus->topology, "2 sockets x 2 cores x 2 threads");
  ASSERT_EQ(object_.status.numa.size(), 2u);
  EXPECT_EQ(object_.status.numa[0], (crd::NumaCellStatus{0, "0-3", "0-1", "384Mi"}));
  EXPECT_EQ(object_.status.numa[1], (crd::NumaCellStatus{1, "4-7", "4-5", "256Mi"}));
  for (bool inactive : {false, true}) {
    const std::string claim = Claim(inactive);
    EXPECT_NE(claim.find("owner=\"default/shapes\""), std::string::npos) << claim;
  }
  ASSERT_TRUE(GuestShows({2, 2})) << "core 2 did not come online in the guest's node 1";
  Measure("shapes_core_plug_to_guest_online_s", MillisecondsSince(start) / 1000.0, "s");
  ExpectPinsReadBack();

  // The rival, through its own connection: told who owns the guest, changes nothing.
  rival_.spec.cpu.vcpus = 8;
  EXPECT_TRUE(Pass(agent_b_, rival_).steps.empty()) << "the rival changed the guest";
  EXPECT_EQ(Cond(rival_, reconciler::condition::kReady).reason, "DomainClaimed");
  std::printf("rival: %s\n", Cond(rival_, reconciler::condition::kReady).message.c_str());

  // Not whole cores: refused before any call.
  SetVcpus(5, std::nullopt);
  EXPECT_TRUE(Pass().steps.empty());
  EXPECT_EQ(Synced().reason, "TopologyMismatch");
  std::printf("vcpus 5: %s\n", Synced().message.c_str());

  // 6: cell 0 is now the emptier (2 to 2, the lower first): core 1 (vCPU 2-3). Not whole
  // sockets, which the condition says.
  SetVcpus(6, std::nullopt);
  EXPECT_EQ(Steps(Pass()), (StepList{{"pin", 2}, {"plug", 2}, {"pin", 3}, {"plug", 3}}));
  EXPECT_EQ(Synced().status, "True");
  EXPECT_NE(Synced().message.find("not a whole number of sockets"), std::string::npos)
      << Synced().message;
  EXPECT_EQ(object_.status.numa[0].vcpus, "0-3");
  ASSERT_TRUE(GuestShows({4, 2}));
}

void VmShapesE2E::CheckAQemuRefusalLeavesOneCoreIncomplete() {
  // QEMU refuses core 3's second thread (a device with its id, added behind libvirt's back).
  ASSERT_EQ(Monitor(R"({"execute":"device_add","arguments":{"driver":"usb-kbd","id":"vcpu7"}})")
                .exit_code,
            0);
  SetVcpus(std::nullopt, 2);
  Pass();
  EXPECT_EQ(Synced().reason, "PartialFailure");
  EXPECT_NE(Synced().message.find("core 3 (vCPU 6-7) is incomplete: only vCPU 6 of its 2 threads"),
            std::string::npos)
      << Synced().message;
  EXPECT_NE(Synced().message.find("Duplicate device ID 'vcpu7'"), std::string::npos);
  EXPECT_EQ(object_.status.vcpus->incomplete_cores, "6-7");
  ASSERT_EQ(Monitor(R"({"execute":"device_del","arguments":{"id":"vcpu7"}})").exit_code, 0);
  ASSERT_TRUE(PollUntil(
      [&] {
        return Monitor(R"({"execute":"qom-list","arguments":{"path":"/machine/peripheral"}})")
                   .output.find("\"vcpu7\"") == std::string::npos;
      },
      10s));
  StepList plugs;
  for (const auto& step : Steps(Pass())) {
    if (step.first == "plug") plugs.push_back(step);
  }
  EXPECT_EQ(plugs, (StepList{{"plug", 7}})) << "only the missing thread";
  EXPECT_EQ(Synced().status, "True") << Synced().message;
  EXPECT_EQ(object_.status.vcpus->incomplete_cores, "");
  auto full = GuestShows({4, 4});
  ASSERT_TRUE(full);
  std::set<std::string> packages;
  for (const auto& [cpu, core] : full->cores) packages.insert(core.substr(0, core.find('.')));
  EXPECT_EQ(packages.size(), 2u) << "two sockets";
  ExpectPinsReadBack();
  std::map<std::string, int> per_host_cpu;
  for (const auto& [id, cpus] : object_.status.vcpus->pins) per_host_cpu[cpus]++;
  EXPECT_EQ(per_host_cpu, (std::map<std::string, int>{{"0", 4}, {"1", 4}})) << "dealt evenly";
}

void VmShapesE2E::CheckDimmsLandPerCell() {
  // +128 MiB: a DIMM to cell 1, which has less memory (256 to 384 MiB).
  const uint64_t node1_kb = NodeKb(1), node0_kb = NodeKb(0);
  object_.spec.memory.size = *crd::Quantity::Parse("768Mi");
  ++object_.metadata.generation;
  Pass();
  EXPECT_EQ(Cond(object_, reconciler::condition::kMemorySynced).status, "True")
      << Cond(object_, reconciler::condition::kMemorySynced).message;
  EXPECT_EQ(object_.status.numa[1].memory, "384Mi");
  ASSERT_TRUE(NodeGrows(1, node1_kb + 120 * 1024)) << "the DIMM did not reach guest node 1";
  EXPECT_EQ(NodeKb(0), node0_kb);

  // spec.memory.numaNode: 1, although the cells now tie (384 MiB each) and cell 0 would
  // be the choice.
  const uint64_t node1_one_dimm_kb = NodeKb(1);
  object_.spec.memory.size = *crd::Quantity::Parse("896Mi");
  object_.spec.memory.numa_node = 1;
  ++object_.metadata.generation;
  Pass();
  EXPECT_EQ(Cond(object_, reconciler::condition::kMemorySynced).status, "True")
      << Cond(object_, reconciler::condition::kMemorySynced).message;
  EXPECT_EQ(object_.status.numa[0].memory, "384Mi");
  EXPECT_EQ(object_.status.numa[1].memory, "512Mi");
  ASSERT_TRUE(NodeGrows(1, node1_one_dimm_kb + 120 * 1024))
      << "the second DIMM did not reach guest node 1";
  EXPECT_EQ(NodeKb(0), node0_kb);
  std::printf("guest node MemTotal kB: node 0 %lu -> %lu, node 1 %lu -> %lu\n",
              static_cast<unsigned long>(node0_kb), static_cast<unsigned long>(NodeKb(0)),
              static_cast<unsigned long>(node1_kb), static_cast<unsigned long>(NodeKb(1)));
}

void VmShapesE2E::CheckWindowsMetadataRefusesAnUnplug() {
  // What virt-install writes for a Windows 10 guest, set on the live domain.
  ASSERT_EQ(Virsh({"metadata", guest_->name(), kLibosinfo, "--key", "libosinfo", "--live", "--set",
                   "<libosinfo><os id='http://microsoft.com/win/10'/></libosinfo>"})
                .exit_code,
            0);
  SetVcpus(6, std::nullopt);
  const auto start = std::chrono::steady_clock::now();
  reconciler::Result refused = Pass();
  Measure("shapes_unplug_refused_for_windows_pass_ms", MillisecondsSince(start), "ms");
  EXPECT_TRUE(refused.steps.empty()) << "an unplug was asked of a Windows guest";
  EXPECT_EQ(Synced().reason, "UnplugUnsupportedByGuest") << Synced().message;
  EXPECT_NE(object_.status.guest_os.find("Windows"), std::string::npos) << object_.status.guest_os;
  EXPECT_EQ(EnabledCount(backend_a_.Observe(guest_->name()).value()), 8u);
  ASSERT_EQ(Virsh({"metadata", guest_->name(), kLibosinfo, "--live", "--remove"}).exit_code, 0);
}

// Whether a connection's event sink has heard of the guest since the last Clear().
class Ear {
 public:
  Ear(LibvirtHypervisor& backend, std::string domain) : backend_(backend) {
    backend_.SetEventSink([this, domain = std::move(domain)](const std::string& name) {
      std::lock_guard lock(mu_);
      heard_ = heard_ || name == domain;
    });
  }
  ~Ear() { backend_.SetEventSink(nullptr); }
  void Clear() {
    std::lock_guard lock(mu_);
    heard_ = false;
  }
  bool HearsWithin(std::chrono::milliseconds limit) {
    return PollUntil(
        [&] {
          std::lock_guard lock(mu_);
          return heard_;
        },
        limit);
  }

 private:
  LibvirtHypervisor& backend_;
  std::mutex mu_;
  bool heard_ = false;  // guarded by mu_
};

void VmShapesE2E::CheckTheOwnerHandsTheDomainOver() {
  Ear b_ear(backend_b_, guest_->name());
  ASSERT_TRUE(claim_.has_value());
  const auto released_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(backend_a_.ReleaseDomain(guest_->name(), *claim_).ok());
  ASSERT_TRUE(b_ear.HearsWithin(10s)) << "no metadata-change event reached the other connection";
  Measure("shapes_claim_release_event_ms", MillisecondsSince(released_at), "ms");
  rival_.spec.cpu.vcpus = 8;  // what the guest has: the takeover changes nothing
  ++rival_.metadata.generation;
  // The takeover's claim is news to the other connection only: the claimant's own pass is
  // the one looking, and its echo would bring a second pass of every newly claimed domain.
  reconciler::Result takeover;
  {
    Ear a_ear(backend_a_, guest_->name());
    b_ear.Clear();
    takeover = Pass(agent_b_, rival_);
    EXPECT_TRUE(takeover.claim.has_value());
    EXPECT_TRUE(a_ear.HearsWithin(10s))
        << "the takeover's claim did not reach the former owner's connection";
    // Both connections get the event from the same libvirtd broadcast: a's has come, so b's
    // would have by now too.
    EXPECT_FALSE(b_ear.HearsWithin(1s)) << "the claimant was told of its own claim";
  }
  EXPECT_EQ(Cond(rival_, reconciler::condition::kReady).status, "True")
      << Cond(rival_, reconciler::condition::kReady).message;
  EXPECT_NE(Claim(false).find("owner=\"default/rival\""), std::string::npos);
  EXPECT_TRUE(Pass().steps.empty());
  EXPECT_EQ(Cond(object_, reconciler::condition::kReady).reason, "DomainClaimed");
  // The rival goes (deleted): its agent releases, and the first object claims again.
  ASSERT_TRUE(backend_b_.ReleaseDomain(guest_->name(), *takeover.claim).ok());
}

void VmShapesE2E::CheckACoreIsUnpluggedInTheReverseOrder() {
  // Down to 6: the cells tie at 4, so the last plugged core goes, core 3 (vCPU 6-7, cell 1),
  // both threads. Under TCG each unplug times out in libvirt (design §4) and is pending.
  SetVcpus(6, std::nullopt);
  const auto start = std::chrono::steady_clock::now();
  reconciler::Result shrunk = Pass();
  Measure("shapes_core_unplug_pass_s", MillisecondsSince(start) / 1000.0, "s");
  StepList unplugs;
  for (const auto& step : Steps(shrunk)) {
    if (step.first == "unplug") unplugs.push_back(step);
  }
  EXPECT_EQ(unplugs, (StepList{{"unplug", 7}, {"unplug", 6}}));
  const std::string reason = Synced().reason;
  EXPECT_TRUE(reason == "UnplugPending" || reason == "OutOfSync")
      << reason << ": " << Synced().message;
  ASSERT_TRUE(GuestShows({4, 2})) << "the guest did not let go of core 3's two threads";
  EXPECT_EQ(DomainStateOf(guest_->name()), "running");
}

TEST_F(VmShapesE2E, OneGuestWithSocketsThreadsNumaPinningAndTwoClaimants) {
  auto observed = backend_a_.Observe(guest_->name());
  ASSERT_TRUE(observed.ok()) << observed.status().ToString();
  const DomainObservation& domain = observed.value();
  EXPECT_EQ(domain.topology.sockets, 2u);
  EXPECT_EQ(domain.topology.cores, 2u);
  EXPECT_EQ(domain.topology.threads, 2u);
  ASSERT_EQ(domain.numa_cells.size(), 2u);
  EXPECT_EQ(domain.numa_cells[1].vcpus, (std::vector<unsigned>{4, 5, 6, 7}));
  EXPECT_EQ(domain.vcpus[0].pin, std::vector<unsigned>{0});
  EXPECT_EQ(domain.host_cpus, 2u) << "this machine has 2 CPUs";
  ASSERT_TRUE(GuestShows({2, 0})) << "the guest did not boot with core 0 in its node 0";

  CheckCoresGoRoundRobinOverTheCells();
  if (HasFatalFailure()) return;
  CheckAQemuRefusalLeavesOneCoreIncomplete();
  if (HasFatalFailure()) return;
  CheckDimmsLandPerCell();
  if (HasFatalFailure()) return;
  CheckWindowsMetadataRefusesAnUnplug();
  if (HasFatalFailure()) return;
  CheckTheOwnerHandsTheDomainOver();
  if (HasFatalFailure()) return;
  CheckACoreIsUnpluggedInTheReverseOrder();
}

}  // namespace
}  // namespace hotplug::e2e

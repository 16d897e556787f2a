// The libvirt backend's pure parsers, without a daemon: domain XML as libvirt 9.0 writes it for
// a running guest, the XML sent back to resize a virtio-mem device, and QEMU's reply to
// query-cpus-fast. The same code is driven against a real libvirtd in tests/e2e/.
#include <gtest/gtest.h>

#include <libvirt/virterror.h>

#include "backends/libvirt/domain_events.h"
#include "backends/libvirt/domain_xml.h"
#include "backends/libvirt/errors.h"
#include "backends/libvirt/owner_claim.h"
#include "backends/libvirt/qemu_cpus.h"

namespace hotplug::backends::libvirt {
namespace {

TEST(DomainEventsTest, TheEchoOfEachOwnClaimWriteIsDroppedOnceAndOthersAreDelivered) {
  DomainEvents events;
  std::vector<std::string> delivered;
  events.SetSink([&](const std::string& domain) { delivered.push_back(domain); });
  events.DeliverClaimChange("vm");  // another process's claim
  events.OwnClaimWriting("vm");
  events.OwnClaimWriting("vm");
  events.DeliverClaimChange("other");  // not ours: a different domain
  events.DeliverClaimChange("vm");     // our two writes' echoes
  events.DeliverClaimChange("vm");
  events.DeliverClaimChange("vm");  // and then someone else's
  events.OwnClaimWriting("vm");
  events.OwnClaimNotWritten("vm");  // the write failed: no echo to expect
  events.DeliverClaimChange("vm");
  events.Deliver("vm");  // a device or lifecycle event is never an echo
  EXPECT_EQ(delivered, (std::vector<std::string>{"vm", "other", "vm", "vm", "vm"}));
}

TEST(DomainEventsTest, AnEchoThatNeverCameDoesNotSwallowALaterEvent) {
  DomainEvents events(std::chrono::steady_clock::duration::zero());  // every echo is late
  int delivered = 0;
  events.SetSink([&](const std::string&) { ++delivered; });
  events.OwnClaimWriting("vm");  // its event was lost with the connection
  events.DeliverClaimChange("vm");
  EXPECT_EQ(delivered, 1);
}

constexpr uint64_t kMiB = 1024 * 1024;

// A TCG guest after one vCPU hotplug: libvirt writes the <vcpus> map only from then on.
constexpr const char* kLiveXml = R"(<domain type='qemu' id='3'>
  <name>e2e-vcpu</name>
  <maxMemory slots='4' unit='KiB'>2097152</maxMemory>
  <memory unit='KiB'>786432</memory>
  <currentMemory unit='KiB'>786432</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <vcpus>
    <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>
    <vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>
    <vcpu id='2' enabled='no' hotpluggable='yes'/>
    <vcpu id='3' enabled='no' hotpluggable='yes'/>
  </vcpus>
  <cpu mode='custom' match='exact' check='full'>
    <topology sockets='4' dies='1' cores='1' threads='1'/>
    <numa>
      <cell id='0' cpus='0-3' memory='524288' unit='KiB'/>
    </numa>
  </cpu>
  <devices>
    <memory model='dimm'>
      <target><size unit='KiB'>131072</size><node>0</node></target>
      <alias name='dimm0'/>
      <address type='dimm' slot='0' base='0x100000000'/>
    </memory>
    <memory model='virtio-mem'>
      <target>
        <size unit='KiB'>1048576</size>
        <node>0</node>
        <block unit='KiB'>2048</block>
        <requested unit='KiB'>131072</requested>
        <current unit='KiB'>131072</current>
      </target>
      <alias name='virtiomem0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </memory>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
    </channel>
  </devices>
</domain>)";

TEST(DomainXmlTest, ReadsTheLiveXmlOfAHotpluggedGuest) {
  auto parsed = ParseDomainXml(kLiveXml);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const ParsedDomainXml& d = parsed.value();
  EXPECT_EQ(d.domain_type, "qemu");
  EXPECT_TRUE(d.tcg);
  EXPECT_EQ(d.maximum_vcpus, 4u);
  EXPECT_EQ(d.current_vcpus, 2u);
  ASSERT_EQ(d.vcpus.size(), 4u);
  EXPECT_TRUE(d.vcpus[0].enabled);
  EXPECT_FALSE(d.vcpus[0].hotpluggable);
  EXPECT_TRUE(d.vcpus[1].enabled);
  EXPECT_TRUE(d.vcpus[1].hotpluggable);
  EXPECT_EQ(d.vcpus[1].order, 2u);
  EXPECT_FALSE(d.vcpus[2].enabled);
  EXPECT_EQ(d.vcpus[3].id, 3u);
  EXPECT_EQ(d.topology.sockets, 4u);
  EXPECT_EQ(d.topology.threads, 1u);
  EXPECT_FALSE(d.has_pinning);
  EXPECT_TRUE(d.has_agent_channel);

  EXPECT_EQ(d.memory.maximum_bytes, 2048 * kMiB);
  EXPECT_EQ(d.memory.slots, 4u);
  EXPECT_EQ(d.memory.current_bytes, 768 * kMiB);
  EXPECT_EQ(d.memory.boot_bytes, 512 * kMiB);  // the NUMA cells, not memory minus devices
  ASSERT_EQ(d.memory.devices.size(), 2u);
  const MemoryDevice& dimm = d.memory.devices[0];
  EXPECT_EQ(dimm.model, MemoryDevice::Model::kDimm);
  EXPECT_EQ(dimm.alias, "dimm0");
  EXPECT_EQ(dimm.size_bytes, 128 * kMiB);
  EXPECT_EQ(dimm.current_bytes, 128 * kMiB);
  EXPECT_EQ(dimm.node, 0);
  const MemoryDevice& virtio = d.memory.devices[1];
  EXPECT_EQ(virtio.model, MemoryDevice::Model::kVirtioMem);
  EXPECT_EQ(virtio.alias, "virtiomem0");
  EXPECT_EQ(virtio.size_bytes, 1024 * kMiB);
  EXPECT_EQ(virtio.block_bytes, 2 * kMiB);
  EXPECT_EQ(virtio.requested_bytes, 128 * kMiB);
  EXPECT_EQ(virtio.current_bytes, 128 * kMiB);
}

TEST(DomainXmlTest, WithoutAVcpusMapTheImpliedOneIsUsed) {
  auto parsed = ParseDomainXml(
      "<domain type='kvm'><vcpu current='2'>4</vcpu><memory>1048576</memory>"
      "<cputune><vcpupin vcpu='0' cpuset='1'/></cputune></domain>");
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed.value().tcg);
  EXPECT_TRUE(parsed.value().vcpus.empty());
  EXPECT_TRUE(parsed.value().has_pinning);
  EXPECT_EQ(parsed.value().memory.current_bytes, 1024 * kMiB);  // <memory> in KiB by default
  EXPECT_EQ(parsed.value().memory.boot_bytes, 1024 * kMiB);
  auto implied = ImpliedVcpuMap(4, 2);
  ASSERT_EQ(implied.size(), 4u);
  EXPECT_TRUE(implied[1].enabled);
  EXPECT_FALSE(implied[2].enabled);
  EXPECT_FALSE(implied[0].hotpluggable);
  EXPECT_FALSE(implied[1].hotpluggable) << "a boot vCPU: libvirt refuses to unplug it";
  EXPECT_TRUE(implied[2].hotpluggable);
  EXPECT_TRUE(implied[3].hotpluggable);
}

TEST(DomainXmlTest, RefusesWhatIsNotXmlAndAbsurdVcpuCounts) {
  auto not_xml = ParseDomainXml("<domain><vcpu>4</vcpu>");
  ASSERT_FALSE(not_xml.ok());
  EXPECT_NE(not_xml.status().message().find("could not parse the domain XML"), std::string::npos);

  // Four billion slots would be allocated one by one: refused instead.
  auto huge =
      ParseDomainXml("<domain><vcpu>4000000000</vcpu><vcpus><vcpu id='0'/></vcpus></domain>");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("at most 16384"), std::string::npos)
      << huge.status().message();
  EXPECT_FALSE(ParseDomainXml("<domain><vcpu current='5'>4</vcpu></domain>").ok());
}

TEST(DomainXmlTest, SizesThatOverflowReadAsAbsent) {
  auto parsed = ParseDomainXml(
      "<domain><vcpu>1</vcpu><memory unit='TiB'>99999999999</memory>"
      "<currentMemory unit='KiB'>524288</currentMemory>"
      "<cpu><numa><cell memory='18446744073709551615' unit='GiB'/></numa></cpu></domain>");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed.value().memory.maximum_bytes, 0u);
  EXPECT_EQ(parsed.value().memory.current_bytes, 512 * kMiB);
  EXPECT_EQ(parsed.value().memory.boot_bytes, 0u);
}

TEST(DomainXmlTest, VirtioMemRequestChangesOnlyRequested) {
  auto request = VirtioMemRequestXml(kLiveXml, "virtiomem0", 256 * kMiB);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  const std::string& xml = request.value();
  EXPECT_NE(xml.find("<requested unit=\"KiB\">262144</requested>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<size unit=\"KiB\">1048576</size>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("slot=\"0x05\""), std::string::npos) << xml;
  EXPECT_EQ(xml.find("dimm0"), std::string::npos);

  EXPECT_FALSE(VirtioMemRequestXml(kLiveXml, "dimm0", 256 * kMiB).ok());  // not virtio-mem
  EXPECT_FALSE(VirtioMemRequestXml(kLiveXml, "virtiomem0", 256 * kMiB + 1).ok());
  auto missing = VirtioMemRequestXml(kLiveXml, "virtiomem9", 256 * kMiB);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no memory device with alias 'virtiomem9'"),
            std::string::npos);
  EXPECT_FALSE(MemoryDeviceXml(kLiveXml, "x'] | //*[@a='").ok());  // never spliced into XPath
}

TEST(QueryCpusFastTest, ReadsTheCpuIndexOfEveryCpu) {
  auto cpus = ParseQueryCpusFast(
      R"({"return": [{"thread-id": 4120, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0},)"
      R"( "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"},)"
      R"( {"thread-id": 4133, "props": {"core-id": 0, "thread-id": 0, "socket-id": 2},)"
      R"( "qom-path": "/machine/peripheral/vcpu2", "cpu-index": 2, "target": "x86_64"}],)"
      R"( "id": "libvirt-412"})");
  ASSERT_TRUE(cpus.ok()) << cpus.status().ToString();
  EXPECT_EQ(cpus.value(), (std::set<unsigned>{0, 2}));
  auto none = ParseQueryCpusFast(R"({"return": []})");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none.value().empty());
}

TEST(QueryCpusFastTest, ErrorsAndOtherShapesAreErrors) {
  auto error = ParseQueryCpusFast(
      R"({"id": "libvirt-9", "error": {"class": "CommandNotFound", "desc": "The command query-cpus-fast has not been found"}})");
  ASSERT_FALSE(error.ok());
  EXPECT_NE(error.status().message().find("has not been found"), std::string::npos);
  for (const char* reply :
       {"", "not json", "[]", R"({"return": {}})", R"({"return": [{"cpu-index": -1}]})",
        R"({"return": [{"cpu-index": "1"}]})", R"({"return": [7]})",
        R"({"return": [{"cpu-index": 1e999}]})", R"({"return": [{"cpu-index": 99999999999}]})"}) {
    auto parsed = ParseQueryCpusFast(reply);
    EXPECT_FALSE(parsed.ok()) << reply;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), ErrorCode::kInternal);
    }
  }
}

TEST(OwnerClaimTest, AClaimReadsBackAsWrittenEvenWithMarkupInItsFields) {
  const DomainClaim claim{"default/web-01", "0b6c3c6e-1a2b-4c3d-8e9f-000000000001", "node-a"};
  EXPECT_EQ(FormatClaim(claim),
            "<claim owner=\"default/web-01\" uid=\"0b6c3c6e-1a2b-4c3d-8e9f-000000000001\" "
            "manager=\"node-a\"/>");
  EXPECT_EQ(ParseClaim(FormatClaim(claim)), claim);
  const DomainClaim odd{"a\"<b>&c", "", "n'1"};
  EXPECT_EQ(ParseClaim(FormatClaim(odd)), odd);
  // As libvirt gives it back: with the namespace it was stored under.
  EXPECT_EQ(ParseClaim("<hotplugowner:claim xmlns:hotplugowner=\"https://hotplug.dev/xmlns/owner\" "
                       "owner=\"ns/x\" uid=\"u\" manager=\"\"/>"),
            (DomainClaim{"ns/x", "u", ""}));
  EXPECT_FALSE(ParseClaim("<claim/>").has_value());
  EXPECT_FALSE(ParseClaim("not xml").has_value());
}

TEST(DomainXmlTest, ReadsTheGuestOsFromTheLibosinfoMetadataVirtInstallWrites) {
  auto parsed = ParseDomainXml(R"(<domain type='kvm'><vcpu>2</vcpu>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://microsoft.com/win/10"/>
    </libosinfo:libosinfo>
    <other:os xmlns:other="https://example.com/other" id="not-this"/>
  </metadata></domain>)");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed.value().guest_os, "http://microsoft.com/win/10");
  // Another namespace's element of the same name is not libosinfo's.
  auto other = ParseDomainXml(R"(<domain><vcpu>1</vcpu><metadata>
    <x:libosinfo xmlns:x="https://example.com/x"><x:os id="http://debian.org/debian/12"/></x:libosinfo>
  </metadata></domain>)");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other.value().guest_os, "");
}

TEST(DomainXmlTest, ReadsEachVcpusPinAndTheDefaultCpuset) {
  auto parsed = ParseDomainXml(R"(<domain type='qemu'><vcpu cpuset='0-3,^2' current='1'>4</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='2' cpuset='1,3'/>
    <vcpupin vcpu='9' cpuset='1'/><vcpupin vcpu='1' cpuset='nonsense'/></cputune></domain>)");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed.value().pins,
            (std::map<unsigned, std::vector<unsigned>>{{0, {0}}, {2, {1, 3}}}));
  EXPECT_EQ(parsed.value().default_cpuset, (std::vector<unsigned>{0, 1, 3}));
  EXPECT_TRUE(parsed.value().has_pinning);
  EXPECT_EQ(ParseCpuset("0-2, ^1"), (std::vector<unsigned>{0, 2}));
  EXPECT_FALSE(ParseCpuset("0-"));
  EXPECT_EQ(ParseCpuset(""), std::vector<unsigned>{});
}

// libvirt's error numbers become ErrorCodes by one table; a few are told apart only by
// libvirt's wording (the boundary where its text becomes a type).
TEST(LibvirtErrorsTest, NumbersAndTheMessagesThatRefineThemMapToCodes) {
  struct Case {
    int number;
    const char* message;
    ErrorCode code;
  };
  const Case cases[] = {
      {VIR_ERR_OK, "", ErrorCode::kOk},
      {VIR_ERR_NO_DOMAIN, "Domain not found", ErrorCode::kDomainNotFound},
      {VIR_ERR_OPERATION_INVALID, "domain is not running", ErrorCode::kDomainNotRunning},
      {VIR_ERR_OPERATION_INVALID, "vcpu 3 is already enabled", ErrorCode::kOperationInvalid},
      {VIR_ERR_NO_CONNECT, "no connection", ErrorCode::kHypervisorUnavailable},
      {VIR_ERR_RPC, "Cannot recv data", ErrorCode::kHypervisorUnavailable},
      {VIR_ERR_OPERATION_TIMEOUT, "vcpu unplug request timed out", ErrorCode::kTimeout},
      {VIR_ERR_AGENT_UNRESPONSIVE, "", ErrorCode::kGuestAgentUnavailable},
      {VIR_ERR_ARGUMENT_UNSUPPORTED, "QEMU guest agent is not configured",
       ErrorCode::kGuestAgentUnavailable},
      {VIR_ERR_OPERATION_UNSUPPORTED, "vcpu '0' can't be unplugged", ErrorCode::kUnsupported},
      {VIR_ERR_INVALID_ARG, "vcpu 9 is not present", ErrorCode::kOperationInvalid},
      {VIR_ERR_OPERATION_FAILED, "memory unplug rejected by the guest", ErrorCode::kGuestRejected},
      {VIR_ERR_INTERNAL_ERROR, "An error occurred, but the cause is unknown",
       ErrorCode::kInternal},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(MapLibvirtError(c.number, c.message), c.code) << c.number << " " << c.message;
  }
}

}  // namespace
}  // namespace hotplug::backends::libvirt

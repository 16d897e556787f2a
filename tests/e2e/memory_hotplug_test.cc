// Memory through the real backend: virtio-mem resized both ways, a DIMM attached and (the
// guest having onlined it movable) detached, each seen as MemTotal in the guest; and a DIMM
// the guest refuses to give back (onlined as plain `online`), reported as an error.
#include <atomic>

#include "tests/e2e/e2e_test_support.h"

namespace hotplug::e2e {
namespace {

using backends::MemoryDevice;
using Model = backends::MemoryDevice::Model;
using backends::MemoryStep;
using backends::libvirt::LibvirtHypervisor;
using namespace std::chrono_literals;

constexpr uint64_t kMiB = 1024ull * 1024;

std::optional<MemoryDevice> FindDevice(const DomainObservation& observation, Model model,
                                       const std::string& alias = "") {
  for (const MemoryDevice& device : observation.memory.devices) {
    if (device.model == model && (alias.empty() || device.alias == alias)) return device;
  }
  return std::nullopt;
}

class MemoryGuestE2E : public ::testing::Test {
 protected:
  static std::unique_ptr<Guest> BootGuest(const std::string& suffix, const char* online_mode,
                                          std::string* error) {
    return Guest::Boot(
        UniqueDomainName(suffix),
        {"--max-vcpus", "2", "--vcpus", "1", "--memory-mib", "512", "--max-memory-mib", "4096",
         "--slots", "8", "--virtio-mem-mib", "1024", "--online-mode", online_mode},
        error);
  }

  void StartWith(Guest* guest, const std::string& boot_error) {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    ASSERT_NE(guest, nullptr) << boot_error;
    ASSERT_EQ(DomainStateOf(guest->name()), "running");
    guest_ = guest;
    backend_.emplace();
    backend_->SetEventSink([this](const std::string& domain) {
      if (domain == guest_->name()) events_.fetch_add(1);
    });
  }

  DomainObservation ObserveOk() {
    auto observed = backend_->Observe(guest_->name());
    EXPECT_TRUE(observed.ok()) << observed.status().ToString();
    return observed.ok() ? observed.value() : DomainObservation{};
  }

  uint64_t MemTotalKb() { return guest_->LatestReport().value_or(GuestReport{}).memtotal_kb; }

  // Applies `step`, then waits until the guest's MemTotal is `expect_kb`.
  backends::Status ApplyAndWait(const MemoryStep& step, uint64_t expect_kb, const char* label) {
    const auto start = std::chrono::steady_clock::now();
    backends::Status status = backend_->ApplyMemoryStep(guest_->name(), step, false);
    const double call_ms = MillisecondsSince(start);
    if (!status.ok()) return status;
    auto seen = guest_->WaitForReport(
        [&](const GuestReport& report) { return report.memtotal_kb == expect_kb; }, 30s);
    EXPECT_TRUE(seen.has_value()) << label << ": guest MemTotal stayed at " << MemTotalKb()
                                  << " kB, expected " << expect_kb;
    Measure(std::string(label) + "_call_ms", call_ms, "ms");
    Measure(std::string(label) + "_to_guest_s", (MillisecondsSince(start) - call_ms) / 1000.0, "s");
    return status;
  }

  Guest* guest_ = nullptr;
  std::optional<LibvirtHypervisor> backend_;
  std::atomic<int> events_{0};
};

class MemoryHotplugE2E : public MemoryGuestE2E {
 protected:
  static void SetUpTestSuite() {
    if (SkipReason().empty()) guest_owned_ = BootGuest("mem", "movable", &boot_error_);
  }
  static void TearDownTestSuite() { guest_owned_.reset(); }
  void SetUp() override { StartWith(guest_owned_.get(), boot_error_); }
  void TearDown() override { backend_.reset(); }
  static std::unique_ptr<Guest> guest_owned_;
  static std::string boot_error_;
};
std::unique_ptr<Guest> MemoryHotplugE2E::guest_owned_;
std::string MemoryHotplugE2E::boot_error_;

TEST_F(MemoryHotplugE2E, VirtioMemGrowsAndShrinksGuestMemory) {
  DomainObservation observation = ObserveOk();
  auto device = FindDevice(observation, Model::kVirtioMem);
  ASSERT_TRUE(device.has_value()) << "no virtio-mem device";
  EXPECT_EQ(device->size_bytes, 1024 * kMiB);
  EXPECT_EQ(device->block_bytes, 2 * kMiB);
  EXPECT_EQ(observation.memory.slots, 8u);
  EXPECT_EQ(observation.memory.boot_bytes, 512 * kMiB);
  const uint64_t before_kb = MemTotalKb();
  const uint64_t requested = device->requested_bytes + 256 * kMiB;

  MemoryStep grow{MemoryStep::Op::kSetVirtioMemRequested, device->alias, requested, 0};
  backends::Status status = ApplyAndWait(grow, before_kb + 256 * 1024, "virtio_mem_grow");
  ASSERT_TRUE(status.ok()) << status.ToString();
  DomainObservation grown;
  EXPECT_TRUE(PollUntil(
      [&] {
        grown = ObserveOk();
        auto now = FindDevice(grown, Model::kVirtioMem, device->alias);
        return now && now->requested_bytes == requested && now->current_bytes == requested;
      },
      10s))
      << "libvirt never reported the virtio-mem device at its requested size";
  EXPECT_TRUE(PollUntil([&] { return events_.load() > 0; }, 10s))
      << "no MEMORY_DEVICE_SIZE_CHANGE event reached the sink";

  MemoryStep shrink{MemoryStep::Op::kSetVirtioMemRequested, device->alias, device->requested_bytes,
                    0};
  status = ApplyAndWait(shrink, before_kb, "virtio_mem_shrink");
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST_F(MemoryHotplugE2E, DimmAttachGrowsAndMovableDetachShrinksGuestMemory) {
  DomainObservation before = ObserveOk();
  const uint64_t before_kb = MemTotalKb();
  MemoryStep attach{MemoryStep::Op::kAttachDimm, "", 256 * kMiB, 0};
  backends::Status status = ApplyAndWait(attach, before_kb + 256 * 1024, "dimm_attach");
  ASSERT_TRUE(status.ok()) << status.ToString();

  DomainObservation after = ObserveOk();
  std::optional<MemoryDevice> dimm;
  for (const MemoryDevice& device : after.memory.devices) {
    if (device.model == Model::kDimm &&
        !FindDevice(before, Model::kDimm, device.alias)) {
      dimm = device;
    }
  }
  ASSERT_TRUE(dimm.has_value()) << "the new DIMM is not in the observation";
  EXPECT_EQ(dimm->size_bytes, 256 * kMiB);
  EXPECT_EQ(after.memory.current_bytes, before.memory.current_bytes + 256 * kMiB);

  const int events_before = events_.load();
  MemoryStep detach{MemoryStep::Op::kDetachDimm, dimm->alias, 0, 0};
  status = ApplyAndWait(detach, before_kb, "dimm_detach");
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(PollUntil([&] { return events_.load() > events_before; }, 10s))
      << "no DEVICE_REMOVED event reached the sink";
  EXPECT_FALSE(FindDevice(ObserveOk(), Model::kDimm, dimm->alias).has_value());
}

class RejectingGuestE2E : public MemoryGuestE2E {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    owned_ = BootGuest("memrej", "online", &boot_error_);
    StartWith(owned_.get(), boot_error_);
  }
  void TearDown() override {
    backend_.reset();
    owned_.reset();
  }
  std::unique_ptr<Guest> owned_;
  std::string boot_error_;
};

TEST_F(RejectingGuestE2E, DimmDetachTheGuestRejectsIsAnError) {
  const uint64_t before_kb = MemTotalKb();
  MemoryStep attach{MemoryStep::Op::kAttachDimm, "", 256 * kMiB, 0};
  backends::Status status = ApplyAndWait(attach, before_kb + 256 * 1024, "dimm_attach_online");
  ASSERT_TRUE(status.ok()) << status.ToString();
  auto dimm = FindDevice(ObserveOk(), Model::kDimm);
  ASSERT_TRUE(dimm.has_value());

  MemoryStep detach{MemoryStep::Op::kDetachDimm, dimm->alias, 0, 0};
  const auto start = std::chrono::steady_clock::now();
  status = backend_->ApplyMemoryStep(guest_->name(), detach, false);
  Measure("dimm_detach_rejected_call_ms", MillisecondsSince(start), "ms");
  std::printf("detach of a DIMM onlined as 'online': %s\n", status.ToString().c_str());
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(status.code() == ErrorCode::kGuestRejected || status.code() == ErrorCode::kTimeout)
      << status.ToString();
  EXPECT_TRUE(FindDevice(ObserveOk(), Model::kDimm, dimm->alias).has_value());
  // Not asserted: before refusing the eject the guest may already have offlined some or all
  // of the DIMM's blocks (seen both ways here), so MemTotal after a rejection varies.
  std::printf("guest MemTotal after the rejected detach: %llu kB (before attach %llu kB)\n",
              static_cast<unsigned long long>(MemTotalKb()),
              static_cast<unsigned long long>(before_kb));
  EXPECT_EQ(DomainStateOf(guest_->name()), "running");
}

class PersistentMemoryE2E : public MemoryGuestE2E {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    owned_ = Guest::Boot(
        UniqueDomainName("mempersist"),
        {"--max-vcpus", "2", "--vcpus", "1", "--virtio-mem-mib", "1024", "--persistent"},
        &boot_error_);
    StartWith(owned_.get(), boot_error_);
  }
  void TearDown() override {
    backend_.reset();
    owned_.reset();
  }
  std::string Inactive() { return Virsh({"dumpxml", "--inactive", guest_->name()}).output; }
  static size_t Count(const std::string& text, const std::string& part) {
    size_t count = 0;
    for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
      ++count;
    }
    return count;
  }
  std::unique_ptr<Guest> owned_;
  std::string boot_error_;
};

TEST_F(PersistentMemoryE2E, PersistWritesVirtioMemAndDimmChangesToTheInactiveDefinition) {
  auto device = FindDevice(ObserveOk(), Model::kVirtioMem);
  ASSERT_TRUE(device.has_value());
  ASSERT_EQ(device->requested_bytes, 0u);
  const uint64_t base_kb = MemTotalKb();
  MemoryStep live_only{MemoryStep::Op::kSetVirtioMemRequested, device->alias, 128 * kMiB, 0};
  const std::string before = Inactive();
  backends::Status status = backend_->ApplyMemoryStep(guest_->name(), live_only, false);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Inactive(), before) << "persist=false changed the persistent definition";

  MemoryStep persisted{MemoryStep::Op::kSetVirtioMemRequested, device->alias, 256 * kMiB, 0};
  status = backend_->ApplyMemoryStep(guest_->name(), persisted, true);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_NE(Inactive().find("<requested unit='KiB'>262144</requested>"), std::string::npos)
      << Inactive();

  ASSERT_TRUE(guest_->WaitForReport(
      [&](const GuestReport& report) { return report.memtotal_kb == base_kb + 256 * 1024; }, 30s));
  MemoryStep attach{MemoryStep::Op::kAttachDimm, "", 256 * kMiB, 0};
  status = backend_->ApplyMemoryStep(guest_->name(), attach, true);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Count(Inactive(), "<memory model='dimm'>"), 1u) << Inactive();
  auto dimm = FindDevice(ObserveOk(), Model::kDimm);
  ASSERT_TRUE(dimm.has_value());
  // The guest must have onlined it (movable) before it can give it back.
  ASSERT_TRUE(guest_->WaitForReport(
      [&](const GuestReport& report) { return report.memtotal_kb == base_kb + 512 * 1024; }, 30s));
  MemoryStep detach{MemoryStep::Op::kDetachDimm, dimm->alias, 0, 0};
  status = backend_->ApplyMemoryStep(guest_->name(), detach, true);
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Count(Inactive(), "<memory model='dimm'>"), 0u) << Inactive();
}

}  // namespace
}  // namespace hotplug::e2e

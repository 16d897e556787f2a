#include "backends/libvirt/libvirt_hypervisor.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>

#include "backends/libvirt/code_map.h"
#include "backends/libvirt/connection.h"
#include "backends/libvirt/domain_events.h"
#include "backends/libvirt/domain_xml.h"
#include "backends/libvirt/errors.h"
#include "backends/libvirt/event_loop.h"
#include "backends/libvirt/handles.h"
#include "backends/libvirt/load_stats.h"
#include "backends/libvirt/owner_claim.h"
#include "backends/libvirt/qemu_cpus.h"
#include "backends/libvirt/tcg_replug_record.h"
#include "backends/range_list.h"
#include "backends/tcg_replug.h"
#include "common/thread_annotations.h"

namespace hotplug::backends::libvirt {
namespace {

bool LooksLikeUuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (text[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

constexpr CodeMapping<DomainState> kStates[] = {{VIR_DOMAIN_RUNNING, DomainState::kRunning},
                                                {VIR_DOMAIN_PAUSED, DomainState::kPaused},
                                                {VIR_DOMAIN_PMSUSPENDED, DomainState::kPaused},
                                                {VIR_DOMAIN_SHUTOFF, DomainState::kShutOff},
                                                {VIR_DOMAIN_CRASHED, DomainState::kCrashed}};

constexpr CodeMapping<JobKind> kJobOperations[] = {
    {VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN, JobKind::kMigration},
    {VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT, JobKind::kMigration},
    {VIR_DOMAIN_JOB_OPERATION_SAVE, JobKind::kSave},
    {VIR_DOMAIN_JOB_OPERATION_RESTORE, JobKind::kSave},
    {VIR_DOMAIN_JOB_OPERATION_SNAPSHOT, JobKind::kSnapshot},
    {VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_REVERT, JobKind::kSnapshot}};

// libvirt's virDomain*Reason values, by state, in their enum order.
std::string StateReason(int state, int reason) {
  static const char* const kRunning[] = {
      "unknown",       "booted",   "migrated",           "restored",
      "from snapshot", "unpaused", "migration canceled", "save canceled",
      "wakeup",        "crashed",  "post-copy",          "post-copy failed"};
  static const char* const kPaused[] = {
      "unknown", "user",        "migrating",     "saving",           "dumping",
      "ioerror", "watchdog",    "from snapshot", "shutting down",    "snapshot",
      "crashed", "starting up", "post-copy",     "post-copy failed", "api error"};
  static const char* const kShutOff[] = {"unknown", "shutdown",      "destroyed",
                                         "crashed", "migrated",      "saved",
                                         "failed",  "from snapshot", "daemon"};
  std::span<const char* const> reasons;
  switch (state) {
    case VIR_DOMAIN_RUNNING:
      reasons = kRunning;
      break;
    case VIR_DOMAIN_PAUSED:
      reasons = kPaused;
      break;
    case VIR_DOMAIN_SHUTOFF:
      reasons = kShutOff;
      break;
    case VIR_DOMAIN_CRASHED:
      return reason == VIR_DOMAIN_CRASHED_PANICKED ? "panicked" : "crashed";
    default:
      break;
  }
  if (reason >= 0 && static_cast<size_t>(reason) < reasons.size()) return reasons[reason];
  return "unknown";
}

}  // namespace

struct LibvirtHypervisor::Impl {
  // A connection and a looked-up domain, valid for one backend call.
  struct Session {
    ConnectionRef conn;
    DomainHandle domain;
    std::string name;
  };

  explicit Impl(LibvirtOptions opts)
      : options(std::move(opts)),
        events(std::make_shared<DomainEvents>()),
        event_loop(EventLoop::Acquire()),
        connection(
            ConnectionOptions{options.uri, options.keepalive_interval_s, options.keepalive_count,
                              options.reconnect_initial_backoff, options.reconnect_max_backoff},
            options.now ? options.now : [] { return std::chrono::steady_clock::now(); },
            [events = events](OpenConnection& opened) {
              DomainEvents::RegisterOn(events, opened);
            }) {}

  ~Impl() { connection.Close(); }

  // The last libvirt error as a Status; forgets the connection when the error says it is gone.
  Status Fail(const ConnectionRef& conn, std::string_view what) {
    Status status = StatusFromLastError(what);
    virResetLastError();
    if (IsConnectionLost(status.code())) connection.Drop(conn);
    return status;
  }

  Result<DomainHandle> Lookup(const ConnectionRef& conn, const std::string& domain) {
    virDomainPtr found = nullptr;
    if (LooksLikeUuid(domain)) {
      found = virDomainLookupByUUIDString(conn->get(), domain.c_str());
      if (found != nullptr) return DomainHandle(found);
      virResetLastError();
    }
    found = virDomainLookupByName(conn->get(), domain.c_str());
    if (found == nullptr) return Fail(conn, "virDomainLookupByName(" + domain + ")");
    return DomainHandle(found);
  }

  Result<Session> Open(const std::string& domain) {
    for (int attempt = 0;; ++attempt) {
      auto conn = connection.Get();
      if (!conn.ok()) return conn.status();
      auto found = Lookup(conn.value(), domain);
      if (found.ok()) {
        return Session{conn.value(), std::move(found.value()), domain};
      }
      // A connection that died unnoticed (daemon restarted): one retry on a fresh one.
      if (attempt == 0 && IsConnectionLost(found.status().code())) continue;
      return found.status();
    }
  }

  Result<std::string> DomainXml(Session& session, unsigned flags) {
    char* xml = virDomainGetXMLDesc(session.domain.get(), flags);
    if (xml == nullptr) return Fail(session.conn, "virDomainGetXMLDesc(" + session.name + ")");
    return TakeString(xml);
  }

  Result<ParsedDomainXml> ParsedXml(Session& session) {
    auto xml = DomainXml(session, 0);
    if (!xml.ok()) return xml.status();
    return ParseDomainXml(xml.value());
  }

  // A metadata element of the domain (`flags` chooses live or current); nullopt when it has
  // none.
  Result<std::optional<std::string>> ReadMetadata(Session& session, const char* uri,
                                                  unsigned int flags, const std::string& what) {
    char* element =
        virDomainGetMetadata(session.domain.get(), VIR_DOMAIN_METADATA_ELEMENT, uri, flags);
    if (element != nullptr) return std::optional<std::string>(TakeString(element));
    virErrorPtr error = virGetLastError();
    if (error != nullptr && error->code == VIR_ERR_NO_DOMAIN_METADATA) {
      virResetLastError();
      return std::optional<std::string>();
    }
    return Fail(session.conn, "virDomainGetMetadata(" + what + ")");
  }

  Result<std::set<unsigned>> ReadRecord(Session& session) {
    auto element = ReadMetadata(session, kTcgMetadataUri, VIR_DOMAIN_AFFECT_LIVE, session.name);
    if (!element.ok()) return element.status();
    if (!element.value()) return std::set<unsigned>{};
    return ParseUnpluggedVcpus(*element.value());
  }

  Status AddToRecord(Session& session, const std::set<unsigned>& unplugged) {
    MutexLock lock(record_mutex);
    auto record = ReadRecord(session);
    if (!record.ok()) return record.status();
    std::set<unsigned> merged = record.value();
    merged.insert(unplugged.begin(), unplugged.end());
    if (merged == record.value()) return Status::Ok();
    const std::string element = FormatUnpluggedVcpus(merged);
    if (virDomainSetMetadata(session.domain.get(), VIR_DOMAIN_METADATA_ELEMENT, element.c_str(),
                             kTcgMetadataPrefix, kTcgMetadataUri, VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return Fail(session.conn, "virDomainSetMetadata(" + session.name + ")");
    }
    return Status::Ok();
  }

  // The domain's owner: from the live metadata while it runs, else from its definition.
  Result<std::optional<DomainClaim>> ReadClaim(Session& session) {
    auto element = ReadMetadata(session, kOwnerMetadataUri, VIR_DOMAIN_AFFECT_CURRENT,
                                session.name + ", owner");
    if (!element.ok()) return element.status();
    if (!element.value()) return std::optional<DomainClaim>();
    return ParseClaim(*element.value());
  }

  // Writes (or, with nullptr, removes) the owner live and in the persistent definition.
  Status WriteClaim(Session& session, const DomainClaim* claim) {
    virDomainPtr dom = session.domain.get();
    unsigned int flags = 0;
    if (virDomainIsActive(dom) == 1) flags |= VIR_DOMAIN_AFFECT_LIVE;
    if (virDomainIsPersistent(dom) == 1) flags |= VIR_DOMAIN_AFFECT_CONFIG;
    virResetLastError();
    const std::string element = claim != nullptr ? FormatClaim(*claim) : std::string();
    if (virDomainSetMetadata(
            dom, VIR_DOMAIN_METADATA_ELEMENT, claim != nullptr ? element.c_str() : nullptr,
            claim != nullptr ? kOwnerMetadataPrefix : nullptr, kOwnerMetadataUri, flags) < 0) {
      return Fail(session.conn, "virDomainSetMetadata(" + session.name + ", owner)");
    }
    return Status::Ok();
  }

  Result<std::set<unsigned>> ReadQemuVcpus(Session& session) {
    char* reply = nullptr;
    if (virDomainQemuMonitorCommand(session.domain.get(), kQueryCpusFast, &reply, 0) < 0) {
      return Fail(session.conn,
                  "virDomainQemuMonitorCommand(" + session.name + ", query-cpus-fast)");
    }
    return ParseQueryCpusFast(TakeString(reply));
  }

  // The guard before a plug. Only a TCG domain has an unplug record, so the domain XML is
  // read (to tell TCG) only when there is one. Whether QEMU has the vCPU is not asked: unknown
  // counts as unsafe.
  Status CheckVcpuPlug(Session& session, unsigned id) {
    auto unplugged = ReadRecord(session);
    if (!unplugged.ok()) return unplugged.status();
    if (unplugged.value().empty()) return Status::Ok();
    auto parsed = ParsedXml(session);
    if (!parsed.ok()) return parsed.status();
    if (VcpuPlugIsSafe(parsed.value().tcg, unplugged.value(), id, std::nullopt)) {
      return Status::Ok();
    }
    return RefuseVcpuPlug(session.name, id, unplugged.value());
  }

  JobKind ActiveJob(Session& session) {
    int type = VIR_DOMAIN_JOB_NONE;
    TypedParams params;
    if (virDomainGetJobStats(session.domain.get(), &type, params.out_params(), params.out_count(),
                             0) < 0) {
      virResetLastError();
      virDomainJobInfo info{};
      if (virDomainGetJobInfo(session.domain.get(), &info) < 0) {
        virResetLastError();
        return JobKind::kNone;
      }
      return info.type == VIR_DOMAIN_JOB_NONE ? JobKind::kNone : JobKind::kOther;
    }
    if (type == VIR_DOMAIN_JOB_NONE) return JobKind::kNone;
    int operation = VIR_DOMAIN_JOB_OPERATION_UNKNOWN;
    if (virTypedParamsGetInt(params.get(), params.count(), VIR_DOMAIN_JOB_OPERATION, &operation) <=
        0) {
      virResetLastError();
      return JobKind::kOther;
    }
    return MapCode(kJobOperations, operation, JobKind::kOther);
  }

  // The guest's online CPUs through its agent; nullopt when there is no answering agent.
  std::optional<std::vector<unsigned>> GuestOnlineCpus(Session& session) {
    TypedParams params;
    unsigned int count = 0;
    virTypedParameterPtr raw = nullptr;
    if (virDomainGetGuestVcpus(session.domain.get(), &raw, &count, 0) < 0) {
      virResetLastError();
      return std::nullopt;
    }
    *params.out_params() = raw;
    *params.out_count() = static_cast<int>(count);
    const char* online = nullptr;
    if (virTypedParamsGetString(raw, static_cast<int>(count), "online", &online) <= 0 ||
        online == nullptr) {
      virResetLastError();
      return std::vector<unsigned>{};
    }
    return ParseRangeList(online).value_or(std::vector<unsigned>{});
  }

  unsigned int ChangeFlags(Session& session, bool persist) {
    unsigned int flags = VIR_DOMAIN_AFFECT_LIVE;
    if (persist && virDomainIsPersistent(session.domain.get()) == 1) {
      flags |= VIR_DOMAIN_AFFECT_CONFIG;
    }
    virResetLastError();
    return flags;
  }

  const LibvirtOptions options;
  // Declared in this order so that they are destroyed connection first (deregistering the
  // event callbacks), then the event loop (joining its thread), then the events.
  std::shared_ptr<DomainEvents> events;
  std::shared_ptr<EventLoop> event_loop;
  Connection connection;
  Mutex record_mutex;  // serializes read-modify-write of the TCG unplug record
  Mutex claim_mutex;   // serializes read-check-write of the owner's claim
};

LibvirtHypervisor::LibvirtHypervisor(LibvirtOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

LibvirtHypervisor::~LibvirtHypervisor() = default;

void LibvirtHypervisor::SetEventSink(DomainEventSink sink) {
  impl_->events->SetSink(std::move(sink));
}

Result<DomainObservation> LibvirtHypervisor::Observe(const std::string& domain) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  Impl::Session& session = opened.value();
  virDomainPtr dom = session.domain.get();

  DomainObservation observation;
  observation.name = virDomainGetName(dom);
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom, uuid) == 0) observation.uuid = uuid;
  int state = 0, reason = 0;
  if (virDomainGetState(dom, &state, &reason, 0) < 0) {
    return impl_->Fail(session.conn, "virDomainGetState(" + domain + ")");
  }
  observation.state = MapCode(kStates, state, DomainState::kOther);
  observation.state_reason = StateReason(state, reason);
  const int persistent = virDomainIsPersistent(dom);
  if (persistent < 0) return impl_->Fail(session.conn, "virDomainIsPersistent(" + domain + ")");
  observation.persistent = persistent == 1;
  const int active = virDomainIsActive(dom);
  if (active < 0) return impl_->Fail(session.conn, "virDomainIsActive(" + domain + ")");

  auto parsed_result = impl_->ParsedXml(session);
  if (!parsed_result.ok()) return parsed_result.status();
  ParsedDomainXml& parsed = parsed_result.value();
  observation.tcg = parsed.tcg;
  observation.maximum_vcpus = parsed.maximum_vcpus;
  observation.topology = parsed.topology;
  observation.numa_cells = parsed.numa_cells;
  observation.has_pinning = parsed.has_pinning;
  observation.guest_os = parsed.guest_os;
  observation.default_cpuset = parsed.default_cpuset;
  observation.memory = std::move(parsed.memory);
  if (!parsed.vcpus.empty()) {
    observation.vcpus = std::move(parsed.vcpus);
  } else {
    unsigned current = parsed.current_vcpus;
    if (active == 1) {
      const int live = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE);
      if (live < 0) return impl_->Fail(session.conn, "virDomainGetVcpusFlags(" + domain + ")");
      current = static_cast<unsigned>(live);
    }
    observation.vcpus = ImpliedVcpuMap(parsed.maximum_vcpus, current);
  }
  for (const auto& [id, cpus] : parsed.pins) {
    if (id < observation.vcpus.size()) observation.vcpus[id].pin = cpus;
  }
  const int host_cpus = virNodeGetCPUMap(session.conn->get(), nullptr, nullptr, 0);
  if (host_cpus < 0) virResetLastError();
  observation.host_cpus = host_cpus > 0 ? static_cast<unsigned>(host_cpus) : 0;
  const int host_max = virConnectGetMaxVcpus(
      session.conn->get(),
      parsed.tcg || parsed.domain_type.empty() ? "qemu" : parsed.domain_type.c_str());
  if (host_max < 0) virResetLastError();
  observation.host_max_vcpus = host_max > 0 ? static_cast<unsigned>(host_max) : 0;
  auto claim = impl_->ReadClaim(session);
  if (!claim.ok()) return claim.status();
  observation.claim = std::move(claim.value());

  if (active != 1) return observation;

  observation.job = impl_->ActiveJob(session);
  observation.guest_online_cpus = impl_->GuestOnlineCpus(session);
  observation.guest_agent_available = observation.guest_online_cpus.has_value();

  if (parsed.tcg) {
    auto record = impl_->ReadRecord(session);
    std::set<unsigned> unplugged = record.ok() ? record.value() : std::set<unsigned>{};
    if (impl_->options.read_qemu_vcpus_on_tcg) {
      auto qemu = impl_->ReadQemuVcpus(session);
      if (qemu.ok()) {
        std::set<unsigned> newly_gone;
        for (VcpuInfo& vcpu : observation.vcpus) {
          vcpu.present_in_qemu = qemu.value().count(vcpu.id) > 0;
          if (vcpu.enabled && !*vcpu.present_in_qemu && !unplugged.count(vcpu.id)) {
            newly_gone.insert(vcpu.id);  // unplugged behind libvirt's back: remember it
          }
        }
        if (!newly_gone.empty() && impl_->AddToRecord(session, newly_gone).ok()) {
          unplugged.insert(newly_gone.begin(), newly_gone.end());
        }
      }
    }
    observation.unplugged_vcpus = std::move(unplugged);  // what plug safety is decided from
  }
  return observation;
}

Status LibvirtHypervisor::SetVcpu(const std::string& domain, unsigned id, bool enable,
                                  bool persist) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  Impl::Session& session = opened.value();
  if (enable) {
    Status safe = impl_->CheckVcpuPlug(session, id);
    if (!safe.ok()) return safe;
  }
  const unsigned int flags = impl_->ChangeFlags(session, persist);
  const std::string vcpu_map = std::to_string(id);
  const std::string what = std::string("virDomainSetVcpu(") + domain + ", " + vcpu_map + ", " +
                           (enable ? "enable" : "disable") + ")";
  Status status = Status::Ok();
  if (virDomainSetVcpu(session.domain.get(), vcpu_map.c_str(), enable ? 1 : 0, flags) < 0) {
    status = impl_->Fail(session.conn, what);
  }
  if (enable || !(status.ok() || status.code() == ErrorCode::kTimeout)) return status;

  // An unplug was requested and may have happened: on TCG remember it for good, and after a
  // timeout tell what QEMU itself says.
  auto parsed = impl_->ParsedXml(session);
  if (!parsed.ok() || !parsed.value().tcg) return status;
  Status recorded = impl_->AddToRecord(session, {id});
  std::string message = status.message();
  if (!recorded.ok()) {
    message += "; could not record the unplug in the domain metadata: " + recorded.message();
  }
  if (status.code() == ErrorCode::kTimeout) {
    auto qemu = impl_->ReadQemuVcpus(session);
    if (!qemu.ok()) {
      message += "; QEMU's own view could not be read: " + qemu.status().message();
    } else if (qemu.value().count(id) == 0) {
      message += "; QEMU (query-cpus-fast) no longer has vCPU " + vcpu_map +
                 ": the guest released it and libvirt's view is stale";
    } else {
      message += "; QEMU (query-cpus-fast) still has vCPU " + vcpu_map +
                 ": the guest has not released it yet";
    }
  }
  if (status.ok()) return recorded.ok() ? status : Status::Error(ErrorCode::kInternal, message);
  return Status::Error(status.code(), message, status.native_code());
}

Status LibvirtHypervisor::PinVcpu(const std::string& domain, unsigned id,
                                  const std::vector<unsigned>& host_cpus, bool persist) {
  if (host_cpus.empty()) {
    return Status::Error(ErrorCode::kOperationInvalid,
                         "no host CPU to pin vCPU " + std::to_string(id) + " to");
  }
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  Impl::Session& session = opened.value();
  const unsigned int flags = impl_->ChangeFlags(session, persist);
  const unsigned highest = *std::max_element(host_cpus.begin(), host_cpus.end());
  const int maplen = VIR_CPU_MAPLEN(static_cast<int>(highest) + 1);
  std::vector<unsigned char> cpumap(static_cast<size_t>(maplen), 0);
  for (unsigned cpu : host_cpus) VIR_USE_CPU(cpumap.data(), cpu);
  if (virDomainPinVcpuFlags(session.domain.get(), id, cpumap.data(), maplen, flags) < 0) {
    return impl_->Fail(session.conn, "virDomainPinVcpuFlags(" + domain + ", " + std::to_string(id) +
                                         ", " + FormatRangeList(host_cpus) + ")");
  }
  return Status::Ok();
}

Status LibvirtHypervisor::OnlineGuestVcpus(const std::string& domain,
                                           const std::vector<unsigned>& ids) {
  if (ids.empty()) return Status::Ok();
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  Impl::Session& session = opened.value();
  const std::string cpumap = FormatRangeList(ids);
  if (virDomainSetGuestVcpus(session.domain.get(), cpumap.c_str(), 1, 0) < 0) {
    return impl_->Fail(session.conn, "virDomainSetGuestVcpus(" + domain + ", " + cpumap + ")");
  }
  return Status::Ok();
}

Status LibvirtHypervisor::ApplyMemoryStep(const std::string& domain, const MemoryStep& step,
                                          bool persist) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  Impl::Session& session = opened.value();
  virDomainPtr dom = session.domain.get();
  const unsigned int flags = impl_->ChangeFlags(session, persist);

  if (step.op == MemoryStep::Op::kSetBalloon) {
    if (step.bytes < 1024) {
      return Status::Error(ErrorCode::kOperationInvalid, "balloon target must be at least 1 KiB");
    }
    if (virDomainSetMemoryFlags(dom, step.bytes / 1024, flags) < 0) {
      return impl_->Fail(session.conn, "virDomainSetMemoryFlags(" + domain + ", " +
                                           std::to_string(step.bytes / 1024) + " KiB)");
    }
    return Status::Ok();
  }

  auto live_xml = impl_->DomainXml(session, 0);
  if (!live_xml.ok()) return live_xml.status();

  // libvirt matches AFFECT_CONFIG changes against the persistent definition, where the
  // live device (with its alias) is not found ("memory not found", measured): the live
  // change and the persistent one are two calls, each with its own device XML.
  const bool also_config = (flags & VIR_DOMAIN_AFFECT_CONFIG) != 0;
  std::string inactive_device;
  if (also_config && step.op != MemoryStep::Op::kAttachDimm) {
    auto inactive_xml = impl_->DomainXml(session, VIR_DOMAIN_XML_INACTIVE);
    if (!inactive_xml.ok()) return inactive_xml.status();
    auto twin = InactiveMemoryDeviceXml(inactive_xml.value(), live_xml.value(), step.alias);
    if (!twin.ok()) return twin.status();
    inactive_device = twin.value();
  }
  auto config_failed = [&](const char* call) {
    Status status = impl_->Fail(session.conn, std::string(call) + "(" + domain + ", " + step.alias +
                                                  ", persistent definition)");
    return Status::Error(status.code(),
                         "the live change was made, the persistent one failed: " + status.message(),
                         status.native_code());
  };

  if (step.op == MemoryStep::Op::kSetVirtioMemRequested) {
    auto device = VirtioMemRequestXml(live_xml.value(), step.alias, step.bytes);
    if (!device.ok()) return device.status();
    std::string persistent_device;
    if (also_config) {
      auto updated = WithRequestedSize(inactive_device, step.bytes);
      if (!updated.ok()) return updated.status();
      persistent_device = updated.value();
    }
    if (virDomainUpdateDeviceFlags(dom, device.value().c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return impl_->Fail(session.conn, "virDomainUpdateDeviceFlags(" + domain + ", " + step.alias +
                                           " requested=" + std::to_string(step.bytes) + " bytes)");
    }
    if (also_config &&
        virDomainUpdateDeviceFlags(dom, persistent_device.c_str(), VIR_DOMAIN_AFFECT_CONFIG) < 0) {
      return config_failed("virDomainUpdateDeviceFlags");
    }
    return Status::Ok();
  }

  // DIMM attach or detach: refused on TCG after a vCPU unplug in this QEMU process.
  auto parsed = ParseDomainXml(live_xml.value());
  if (!parsed.ok()) return parsed.status();
  if (parsed.value().tcg) {
    auto unplugged = impl_->ReadRecord(session);
    if (!unplugged.ok()) return unplugged.status();
    if (!DimmChangeIsSafe(true, unplugged.value())) {
      return RefuseDimmChange(domain, step.op, unplugged.value());
    }
  }

  if (step.op == MemoryStep::Op::kAttachDimm) {
    const std::string device = DimmXml(step.bytes, step.node);
    if (virDomainAttachDeviceFlags(dom, device.c_str(), flags) < 0) {
      return impl_->Fail(session.conn, "virDomainAttachDeviceFlags(" + domain + ", dimm " +
                                           std::to_string(step.bytes) + " bytes)");
    }
    return Status::Ok();
  }

  if (step.op == MemoryStep::Op::kDetachDimm) {
    auto device = MemoryDeviceXml(live_xml.value(), step.alias);
    if (!device.ok()) return device.status();
    if (virDomainDetachDeviceFlags(dom, device.value().c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return impl_->Fail(session.conn,
                         "virDomainDetachDeviceFlags(" + domain + ", " + step.alias + ")");
    }
    // libvirt returns 0 also when the guest has not answered within its wait: look again,
    // and leave the persistent definition alone until the live device is really gone.
    auto after = impl_->DomainXml(session, 0);
    if (after.ok() && MemoryDeviceXml(after.value(), step.alias).ok()) {
      return Status::Error(ErrorCode::kTimeout,
                           "detach of " + step.alias + " from '" + domain +
                               "' requested; the guest has not released it yet");
    }
    if (also_config &&
        virDomainDetachDeviceFlags(dom, inactive_device.c_str(), VIR_DOMAIN_AFFECT_CONFIG) < 0) {
      return config_failed("virDomainDetachDeviceFlags");
    }
    return Status::Ok();
  }
  return Status::Error(ErrorCode::kUnsupported, std::string("memory step ") +
                                                    MemoryStepOpName(step.op) +
                                                    " is not supported by the libvirt backend");
}

Result<DomainClaim> LibvirtHypervisor::ClaimDomain(const std::string& domain,
                                                   const DomainClaim& claim,
                                                   const std::optional<DomainClaim>& replacing) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  Impl::Session& session = opened.value();
  MutexLock lock(impl_->claim_mutex);
  auto current = impl_->ReadClaim(session);
  if (!current.ok()) return current.status();
  const std::optional<DomainClaim>& held = current.value();
  if (held && !held->SameOwner(claim) && !(replacing && held->SameOwner(*replacing))) {
    return *held;
  }
  if (held == claim) return claim;
  // Events name the domain by its name; `domain` may be its UUID.
  const char* name = virDomainGetName(session.domain.get());
  const std::string event_name = name != nullptr ? name : session.name;
  impl_->events->OwnClaimWriting(event_name);
  if (Status written = impl_->WriteClaim(session, &claim); !written.ok()) {
    impl_->events->OwnClaimNotWritten(event_name);
    return written;
  }
  // Another process may have written between our read and our write: the last write holds.
  auto after = impl_->ReadClaim(session);
  if (!after.ok()) return after.status();
  if (!after.value()) {
    return Status::Error(ErrorCode::kInternal, "the owner's claim on '" + domain +
                                                   "' vanished right after it was written");
  }
  return *after.value();
}

Status LibvirtHypervisor::ReleaseDomain(const std::string& domain, const DomainClaim& claim) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) {
    return opened.status().code() == ErrorCode::kDomainNotFound ? Status::Ok() : opened.status();
  }
  Impl::Session& session = opened.value();
  MutexLock lock(impl_->claim_mutex);
  auto current = impl_->ReadClaim(session);
  if (!current.ok()) return current.status();
  if (!current.value() || !current.value()->SameOwner(claim)) return Status::Ok();
  return impl_->WriteClaim(session, nullptr);
}

Result<LoadSample> LibvirtHypervisor::ReadLoad(const std::string& domain) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  Result<LoadSample> sample = ReadDomainLoad(opened.value().domain.get(), domain);
  if (!sample.ok() && IsConnectionLost(sample.status().code())) {
    impl_->connection.Drop(opened.value().conn);
  }
  return sample;
}

Result<std::set<unsigned>> LibvirtHypervisor::UnpluggedVcpus(const std::string& domain) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  return impl_->ReadRecord(opened.value());
}

Result<std::set<unsigned>> LibvirtHypervisor::QemuVcpus(const std::string& domain) {
  auto opened = impl_->Open(domain);
  if (!opened.ok()) return opened.status();
  return impl_->ReadQemuVcpus(opened.value());
}

}  // namespace hotplug::backends::libvirt

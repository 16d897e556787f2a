#include "controller/kube/node_assigner.h"

#include <nlohmann/json.hpp>

#include "controller/kube/status_writer.h"
#include "controller/log.h"
#include "reconciler/conditions.h"

namespace hotplug::controller::kube {
using json = nlohmann::json;

NodeAssigner::NodeAssigner(Client& client, Informer& informer, EventRecorder& events,
                           const reconciler::Clock& clock, Options options)
    : client_(client),
      informer_(informer),
      events_(events),
      clock_(clock),
      options_(std::move(options)),
      presence_(client, AgentPresence::Options{.ns = options_.lease_namespace,
                                               .poll_period = options_.presence_poll}),
      queue_(clock) {}

NodeAssigner::~NodeAssigner() { Stop(std::chrono::steady_clock::now() + std::chrono::seconds(30)); }

void NodeAssigner::Start() {
  informer_.Start([this](const std::string& key) { queue_.Add(key); });
  bool first = true;
  presence_.Start([this, first](const std::set<std::string>& nodes) mutable {
    OnPresenceChanged(nodes, first);
    first = false;
  });
}

void NodeAssigner::StartWorkers() {
  if (!workers_.Start(options_.workers, "assigner", [this](int) { Worker(); })) return;
  log::Info("node assigner: workers started", {{"workers", std::to_string(options_.workers)}});
}

bool NodeAssigner::Stop(std::chrono::steady_clock::time_point deadline) {
  if (!workers_.Close()) return workers_.running() == 0;  // stopped before
  queue_.ShutDown();
  bool drained = workers_.Wait(deadline);
  presence_.Stop();
  informer_.Stop();
  return drained;
}

void NodeAssigner::OnPresenceChanged(const std::set<std::string>& nodes, bool first) {
  // The objects of a node whose agent came or went are looked at again; after the first
  // poll, every object (until then no report could be made).
  size_t queued = 0;
  for (const std::string& key : informer_.Keys()) {
    if (!first) {
      std::optional<crd::ElasticVM> object = informer_.Get(key);
      if (!object ||
          (!nodes.count(object->spec.node_name) && !nodes.count(LabelledNode(*object)))) {
        continue;
      }
    }
    queue_.Add(key);
    queued++;
  }
  log::Debug("node assigner: agents changed",
             {{"nodes", std::to_string(nodes.size())}, {"objects", std::to_string(queued)}});
}

void NodeAssigner::Worker() {
  while (std::optional<std::string> key = queue_.Get()) {
    bool ok = false;
    try {
      ok = Process(*key);
    } catch (const std::exception& e) {
      log::Error("node assigner: unexpected failure", {{"object", *key}, {"error", e.what()}});
    }
    if (ok) {
      queue_.Forget(*key);
    } else {
      queue_.AddRateLimited(*key);
    }
    queue_.Done(*key);
  }
}

bool NodeAssigner::Process(const std::string& key) {
  std::optional<crd::ElasticVM> object = informer_.Get(key);
  if (!object) return true;             // deleted
  if (!presence_.Known()) return true;  // its first poll queues every object again
  Assignment assignment = Assign(
      *object, [this](const std::string& node) { return presence_.Alive(node); },
      options_.lease_namespace);
  switch (assignment.action) {
    case Assignment::Action::kNothing:
      return true;
    case Assignment::Action::kWaitForRelease:
      // The holder's release is a status write, so a watch event brings the object back;
      // so does the holder's agent going away.
      log::Debug("node assigner: waiting for the release",
                 {{"object", key}, {"holder", assignment.node}, {"to", object->spec.node_name}});
      return true;
    case Assignment::Action::kLabel:
      return WriteLabel(*object, assignment.node);
    case Assignment::Action::kReport:
      return WriteReport(*object, assignment);
  }
  return true;
}

bool NodeAssigner::WriteLabel(const crd::ElasticVM& object, const std::string& node) {
  // The resourceVersion makes it conditional: if the object changed since we decided, the
  // patch fails with 409 and the newer version (already on its way) is decided again.
  json patch = {{"metadata",
                 {{"resourceVersion", object.metadata.resource_version},
                  {"labels", {{crd::kNodeLabel, node}}}}}};
  ApiResult result = client_.Patch(ElasticVMPath(object.metadata.namespace_, object.metadata.name),
                                   patch.dump(), "application/merge-patch+json");
  if (result.not_found()) return true;
  if (result.conflict()) {
    log::Debug("node assigner: the object changed; deciding again", {{"object", object.Key()}});
    return false;
  }
  if (!result.ok()) {
    log::Warn("node assigner: labelling failed",
              {{"object", object.Key()}, {"node", node}, {"error", result.error}});
    return false;
  }
  labels_written_++;
  std::string from = LabelledNode(object);
  log::Info("node assigner: labelled for its node",
            {{"object", object.Key()}, {"node", node}, {"from", from.empty() ? "none" : from}});
  return true;
}

bool NodeAssigner::WriteReport(const crd::ElasticVM& object, const Assignment& assignment) {
  crd::ElasticVMStatus status = object.status;
  const char* reason = AssignmentReasonName(assignment.reason);
  reconciler::SetCondition(status.conditions, "Ready", false, reason, assignment.message,
                           object.metadata.generation, clock_.Now());
  KubeStatusWriter writer(client_, &informer_);
  std::string error;
  if (!writer.WriteStatus(object, status, &error)) {
    log::Warn("node assigner: report failed", {{"object", object.Key()}, {"error", error}});
    return false;
  }
  reports_written_++;
  log::Info("node assigner: reported", {{"object", object.Key()}, {"reason", reason}});
  events_.Record(object,
                 reconciler::Event{reconciler::Event::Type::kWarning, reason, assignment.message});
  return true;
}

}  // namespace hotplug::controller::kube

#include "controller/kube/node_scope.h"

#include <cstdint>
#include <cstdio>

namespace hotplug::controller::kube {
namespace {

constexpr const char* kReady = "Ready";
constexpr std::string_view kLeasePrefix = "hotplug-agent-";
constexpr size_t kMaxNameLength = 253;

bool ReportedAlready(const crd::ElasticVM& object, AssignmentReason reason,
                     const std::string& message) {
  const crd::Condition* ready = crd::FindCondition(object.status, kReady);
  return ready != nullptr && ready->status == "False" &&
         ready->reason == AssignmentReasonName(reason) && ready->message == message &&
         ready->observed_generation == object.metadata.generation;
}

Assignment Report(const crd::ElasticVM& object, AssignmentReason reason, std::string message) {
  if (ReportedAlready(object, reason, message)) return {};
  Assignment out;
  out.action = Assignment::Action::kReport;
  out.reason = reason;
  out.message = std::move(message);
  return out;
}

}  // namespace

const char* AssignmentReasonName(AssignmentReason reason) {
  switch (reason) {
    case AssignmentReason::kNoAgent:
      return "NoAgent";
    case AssignmentReason::kNodeChanged:
      return "NodeChanged";
    case AssignmentReason::kNoNode:
      break;
  }
  return "NoNode";
}

std::string NodeLabelSelector(std::string_view node) {
  return std::string(crd::kNodeLabel) + "=" + std::string(node);
}

std::string LabelledNode(const crd::ElasticVM& object) {
  auto it = object.metadata.labels.find(crd::kNodeLabel);
  return it == object.metadata.labels.end() ? std::string() : it->second;
}

NodeScope ScopeFor(const crd::ElasticVM& object, std::string_view node) {
  if (node.empty()) return NodeScope::kMine;
  if (LabelledNode(object) != node) return NodeScope::kNotMine;
  const std::string& wanted = object.spec.node_name;
  return wanted.empty() || wanted == node ? NodeScope::kMine : NodeScope::kMovedAway;
}

bool HasBeenReleased(const crd::ElasticVM& object) {
  const crd::Condition* ready = crd::FindCondition(object.status, kReady);
  return ready != nullptr && ready->status == "False" &&
         ready->reason == AssignmentReasonName(AssignmentReason::kNodeChanged) &&
         ready->observed_generation == object.metadata.generation;
}

Assignment Assign(const crd::ElasticVM& object,
                  const std::function<bool(const std::string& node)>& agent_alive,
                  std::string_view lease_namespace) {
  const std::string& wanted = object.spec.node_name;
  const std::string labelled = LabelledNode(object);
  if (!wanted.empty() && labelled != wanted) {
    // A new assignment, or a move. The agent that holds the object lets go first, unless
    // there is none to wait for.
    if (labelled.empty() || !agent_alive(labelled) || HasBeenReleased(object)) {
      Assignment out;
      out.action = Assignment::Action::kLabel;
      out.node = wanted;
      return out;
    }
    Assignment out;
    out.action = Assignment::Action::kWaitForRelease;
    out.node = labelled;
    return out;
  }
  const std::string& node = wanted.empty() ? labelled : wanted;
  if (node.empty()) {
    return Report(object, AssignmentReason::kNoNode,
                  "names no node, so no agent reconciles it: set spec.nodeName to the node "
                  "that runs domain " + object.EffectiveDomain());
  }
  if (!agent_alive(node)) {
    return Report(object, AssignmentReason::kNoAgent,
                  "no hotplug-operator agent runs on node " + node + " (Lease " +
                      std::string(lease_namespace) + "/" + AgentLeaseName(node) +
                      " is missing or not renewed): start the agent there, or set "
                      "spec.nodeName to the node that runs domain " + object.EffectiveDomain());
  }
  return {};
}

std::string AgentLeaseName(std::string_view node) {
  std::string name = std::string(kLeasePrefix) + std::string(node);
  if (name.size() <= kMaxNameLength) return name;
  // Too long for a name: keep a prefix of the node and make it unique with a hash of all of
  // it (FNV-1a, so every build of the agent and of the assigner agrees).
  uint64_t fnv = 14695981039346656037ull;
  for (unsigned char c : node) fnv = (fnv ^ c) * 1099511628211ull;
  char hash[24];
  std::snprintf(hash, sizeof(hash), "-%016llx", static_cast<unsigned long long>(fnv));
  name.resize(kMaxNameLength - std::string_view(hash).size());
  while (!name.empty() && (name.back() == '.' || name.back() == '-')) name.pop_back();
  return name + hash;
}

}  // namespace hotplug::controller::kube

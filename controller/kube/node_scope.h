// How an ElasticVM reaches the agent of its node, as pure rules shared by the agent's informer
// and the central node assigner (docs/architecture.md, "How objects reach their node").
//
// The label hotplug.dev/node is the assignment: an agent lists and watches with a label
// selector on it, so the API server sends it its own objects only. spec.nodeName is the
// user's intent; the central assigner keeps the label equal to it. When spec.nodeName moves
// to another node, the old agent stops, writes Ready=False reason NodeChanged (the release),
// and only then does the assigner relabel the object for the new node's agent.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "crd/elasticvm.h"

namespace hotplug::controller::kube {

// The Ready reasons of assignment, written by the central assigner (NoNode, NoAgent) and by
// an agent releasing an object (NodeChanged). Stable CamelCase words, part of the API, beside
// the reconciler's (reconciler/reasons.h), which never uses these.
enum class AssignmentReason { kNoNode, kNoAgent, kNodeChanged };
const char* AssignmentReasonName(AssignmentReason reason);

// `labelSelector` value of an agent's LIST and WATCH: hotplug.dev/node=<node>.
std::string NodeLabelSelector(std::string_view node);

// The node an object is labelled for ("" when unlabelled).
std::string LabelledNode(const crd::ElasticVM& object);

// What an object is to the agent of `node` ("" = an operator without --node-name: every
// object is its own).
enum class NodeScope {
  kMine,       // labelled for this node, and spec.nodeName names it or no node
  kMovedAway,  // labelled for this node, but spec.nodeName names another: release it
  kNotMine,    // labelled for another node (or none)
};
NodeScope ScopeFor(const crd::ElasticVM& object, std::string_view node);

// The agent that held the object has released it for the object's current generation
// (Ready=False, reason NodeChanged, observedGeneration = metadata.generation).
bool HasBeenReleased(const crd::ElasticVM& object);

// What the central assigner does about one object.
struct Assignment {
  enum class Action {
    kNothing,
    kLabel,           // set the label to `node`
    kWaitForRelease,  // the agent of `node` still holds it; its release brings a new event
    kReport,          // write Ready=False with `reason` and `message`
  };
  Action action = Action::kNothing;
  std::string node;
  AssignmentReason reason = AssignmentReason::kNoNode;
  std::string message;
};

// Decides for `object`, given which nodes have a running agent. Idempotent: an object that
// already carries the report it would get needs nothing.
Assignment Assign(const crd::ElasticVM& object,
                  const std::function<bool(const std::string& node)>& agent_alive,
                  std::string_view lease_namespace);

// Name of the Lease an agent renews to say it runs on `node` (a DNS subdomain of at most
// 253 characters, like the node's own name).
std::string AgentLeaseName(std::string_view node);

}  // namespace hotplug::controller::kube

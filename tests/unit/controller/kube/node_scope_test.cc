// controller/kube/node_scope.h: which agent an ElasticVM belongs to, and what the central
// assigner does about it.
#include "controller/kube/node_scope.h"

#include <set>

#include <gtest/gtest.h>

namespace hotplug::controller::kube {
namespace {

crd::ElasticVM Object(const std::string& spec_node, const std::string& label,
                      int64_t generation = 3) {
  crd::ElasticVM object;
  object.metadata.name = "web-01";
  object.metadata.namespace_ = "vms";
  object.metadata.generation = generation;
  object.spec.node_name = spec_node;
  if (!label.empty()) object.metadata.labels[crd::kNodeLabel] = label;
  return object;
}

void SetReady(crd::ElasticVM& object, const std::string& status, const std::string& reason,
              int64_t generation, const std::string& message = "m") {
  object.status.conditions = {{"Ready", status, reason, message, "2026-01-01T00:00:00Z",
                               generation}};
}

TEST(NodeScopeTest, AnAgentTakesWhatIsLabelledForItUnlessSpecNamesAnotherNode) {
  struct Case {
    std::string spec_node, label, agent;
    NodeScope want;
  };
  const Case cases[] = {
      {"a", "a", "a", NodeScope::kMine},
      {"", "a", "a", NodeScope::kMine},  // the label alone names the node
      {"b", "a", "a", NodeScope::kMovedAway},
      {"a", "", "a", NodeScope::kNotMine},  // not labelled yet: the assigner labels it
      {"a", "b", "a", NodeScope::kNotMine},
      {"", "", "a", NodeScope::kNotMine},
      {"", "", "", NodeScope::kMine},  // no --node-name: everything
      {"b", "c", "", NodeScope::kMine},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("spec=" + c.spec_node + " label=" + c.label + " agent=" + c.agent);
    EXPECT_EQ(ScopeFor(Object(c.spec_node, c.label), c.agent), c.want);
  }
}

TEST(NodeScopeTest, AReleaseCountsOnlyForTheCurrentGeneration) {
  crd::ElasticVM object = Object("b", "a", 4);
  EXPECT_FALSE(HasBeenReleased(object));
  SetReady(object, "False", "NodeChanged", 3);
  EXPECT_FALSE(HasBeenReleased(object)) << "a release of an older move";
  SetReady(object, "False", "NodeChanged", 4);
  EXPECT_TRUE(HasBeenReleased(object));
  SetReady(object, "False", "DomainNotFound", 4);
  EXPECT_FALSE(HasBeenReleased(object));
}

TEST(NodeScopeTest, TheAssignerLabelsWaitsOrReports) {
  const std::set<std::string> alive = {"a", "b"};
  auto is_alive = [&](const std::string& node) { return alive.count(node) > 0; };
  using Action = Assignment::Action;
  struct Case {
    const char* what;
    std::string spec_node, label;
    Action want;
    std::string node;
  };
  const Case cases[] = {
      {"a new object naming a node is labelled", "a", "", Action::kLabel, "a"},
      {"a label that disagrees with spec is fixed, once its holder lets go", "b", "a",
       Action::kWaitForRelease, "a"},
      {"a holder without an agent has nothing to let go", "b", "gone", Action::kLabel, "b"},
      {"assigned and served", "a", "a", Action::kNothing, ""},
      {"the label alone is an assignment", "", "b", Action::kNothing, ""},
      {"a node with no agent is reported", "c", "c", Action::kReport, ""},
      {"no node at all is reported", "", "", Action::kReport, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Assignment got = Assign(Object(c.spec_node, c.label), is_alive, "hotplug-system");
    EXPECT_EQ(got.action, c.want);
    EXPECT_EQ(got.node, c.node);
  }
}

TEST(NodeScopeTest, TheReleaseLetsTheMoveProceed) {
  auto alive = [](const std::string&) { return true; };
  crd::ElasticVM object = Object("b", "a", 5);
  EXPECT_EQ(Assign(object, alive, "ns").action, Assignment::Action::kWaitForRelease);
  SetReady(object, "False", "NodeChanged", 5);
  Assignment got = Assign(object, alive, "ns");
  EXPECT_EQ(got.action, Assignment::Action::kLabel);
  EXPECT_EQ(got.node, "b");
}

TEST(NodeScopeTest, ReportsSayWhatIsMissingAndAreNotRepeated) {
  auto nobody = [](const std::string&) { return false; };
  crd::ElasticVM unnamed = Object("", "");
  unnamed.spec.domain = "db-7";
  Assignment no_node = Assign(unnamed, nobody, "hotplug-system");
  ASSERT_EQ(no_node.action, Assignment::Action::kReport);
  EXPECT_EQ(no_node.reason, AssignmentReason::kNoNode);
  EXPECT_NE(no_node.message.find("spec.nodeName"), std::string::npos) << no_node.message;
  EXPECT_NE(no_node.message.find("db-7"), std::string::npos) << no_node.message;

  crd::ElasticVM orphan = Object("host-9", "host-9");
  Assignment no_agent = Assign(orphan, nobody, "hotplug-system");
  ASSERT_EQ(no_agent.action, Assignment::Action::kReport);
  EXPECT_EQ(no_agent.reason, AssignmentReason::kNoAgent);
  EXPECT_NE(no_agent.message.find("hotplug-system/hotplug-agent-host-9"), std::string::npos)
      << no_agent.message;

  // Written once: the same report for the same generation is not written again ...
  SetReady(orphan, "False", "NoAgent", 3, no_agent.message);
  EXPECT_EQ(Assign(orphan, nobody, "hotplug-system").action, Assignment::Action::kNothing);
  // ... but a new generation, or another node, is reported anew.
  orphan.metadata.generation = 4;
  EXPECT_EQ(Assign(orphan, nobody, "hotplug-system").action, Assignment::Action::kReport);
}

TEST(NodeScopeTest, LeaseNamesAreValidNamesEvenForLongNodes) {
  EXPECT_EQ(AgentLeaseName("host-a"), "hotplug-agent-host-a");
  std::string long_node(250, 'x');
  long_node[221] = '.';  // the last character kept before the hash
  std::string name = AgentLeaseName(long_node);
  EXPECT_LE(name.size(), 253u);
  EXPECT_NE(name, AgentLeaseName(long_node + "y")) << "different nodes, different Leases";
  EXPECT_NE(name.back(), '-');
  EXPECT_EQ(name.find(".-"), std::string::npos);
  EXPECT_EQ(name, AgentLeaseName(long_node)) << "stable";
}

TEST(NodeScopeTest, SelectorAndReasonNames) {
  EXPECT_EQ(NodeLabelSelector("host-a"), "hotplug.dev/node=host-a");
  EXPECT_STREQ(AssignmentReasonName(AssignmentReason::kNoNode), "NoNode");
  EXPECT_STREQ(AssignmentReasonName(AssignmentReason::kNoAgent), "NoAgent");
  EXPECT_STREQ(AssignmentReasonName(AssignmentReason::kNodeChanged), "NodeChanged");
}

}  // namespace
}  // namespace hotplug::controller::kube

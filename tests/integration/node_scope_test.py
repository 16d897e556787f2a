#!/usr/bin/env python3
"""Scale-out on a REAL kube-apiserver + etcd (tests/support/control_plane.py): two agents
(--node-name node-a, node-b) and the central node assigner (--assign-nodes, leader-elected),
each under its ServiceAccount from deploy/ (so with exactly deploy/'s RBAC), fake hypervisor
with one shared call log (the same domains, as if both agents could reach them).

- every LIST and WATCH an agent sends carries labelSelector=hotplug.dev/node=<its node>
  (the server's audit log), and every object it decoded was labelled for its node (its
  debug log);
- the assigner labels an object naming a node in spec.nodeName (none, or a wrong label) so
  that node's agent reconciles it; an object naming no node gets Ready=False NoNode, one
  naming a node with no agent Ready=False NoAgent, each with a Warning Event;
- re-pointing spec.nodeName while the old agent is in the middle of plugging hands over:
  the old agent finishes its pass, writes its release, and only then does the new one
  start; no vCPU step is done twice (the shared call log);
- nobody got a 403, and each part used every verb deploy/ grants it (or the verb is
  named with the path that uses it, which this run does not take);
- the agents' Leases are in a namespace of their own: an agent, which may write any Lease
  where it renews its own, cannot touch the central's leader-election Lease;
- once an agent stops and its Lease runs out, its node's objects are reported NoAgent.

Run: python3 tests/integration/node_scope_test.py [path/to/hotplug-operator] [-k NAME]
"""

import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from check_lib import CheckFailed, expect, poll  # noqa: E402
from control_plane import ControlPlane, require_assets  # noqa: E402
from operator_lib import (AGENT_LEASES, Operator, check_no_step_twice,  # noqa: E402
                          read_call_log, run_checks)

DEPLOY = os.path.join(ROOT, "deploy")
SYSTEM = "hotplug-system"
NS = "vms"
NODE_LABEL = "hotplug.dev/node"
LATENCY_MS = 250  # each fake SetVcpu: long enough to re-point an object mid-pass
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""
# name -> (spec.nodeName, label, vCPUs): what each object starts as.
OBJECTS = {
    "a1": ("node-a", None, 2),       # named by spec: the assigner labels it
    "a2": (None, "node-a", 3),       # the label alone assigns it
    "b1": ("node-b", "node-a", 2),   # a wrong label: node-a's agent releases it first
    "b2": ("node-b", None, 2),
    "nowhere": (None, None, 2),      # names no node
    "ghost": ("node-z", None, 2),    # a node without an agent
}


class Scenario:
    """One control plane, deploy/'s RBAC, two agents and the assigner, for every check."""

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="hotplug-node-scope-")
        policy = os.path.join(self.workdir, "audit-policy.yaml")
        with open(policy, "w", encoding="utf-8") as handle:
            handle.write(AUDIT_POLICY)
        self.audit_log = os.path.join(self.workdir, "audit.log")
        self.plane = ControlPlane(self.workdir, apiserver_args=[
            "--audit-policy-file", policy, "--audit-log-path", self.audit_log,
            "--audit-log-format", "json", "--audit-log-mode", "blocking"])
        self.operators = {}
        self.failed = False

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.failed = True
            self.__exit__(None, None, None)
            raise
        return self

    def start(self):
        self.plane.start()
        self.plane.install_crd()
        for name in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml",
                     "central/serviceaccount.yaml", "central/rbac.yaml"):
            self.plane.kubectl("apply", "-f", os.path.join(DEPLOY, name))
        self.plane.kubectl("create", "namespace", NS)
        domains = os.path.join(self.workdir, "domains.json")
        with open(domains, "w", encoding="utf-8") as handle:
            json.dump([{"name": name, "maximumVcpus": 8, "currentVcpus": 1}
                       for name in OBJECTS], handle)
        self.calls = os.path.join(self.workdir, "calls.log")
        for manifest in ("daemonset.yaml", "central/deployment.yaml"):
            with open(os.path.join(DEPLOY, manifest), encoding="utf-8") as handle:
                expect(f"--agent-lease-namespace={AGENT_LEASES}" in handle.read(),
                       f"deploy/{manifest} names another agent Lease namespace")
        common = [f"--namespace={NS}", f"--agent-lease-namespace={AGENT_LEASES}",
                  "--log-level=debug"]
        self.start_operator("central", "hotplug-operator-central", common + [
            "--assign-nodes", "--leader-elect", f"--leader-elect-namespace={SYSTEM}"])
        for node in ("node-a", "node-b"):
            self.start_operator(node, "hotplug-operator", common + [
                f"--node-name={node}", f"--fake-domains-file={domains}",
                f"--fake-call-log={self.calls}", f"--fake-vcpu-latency={LATENCY_MS}ms"])
        # The assigner knows both agents before the objects exist, so none is reported as
        # having no agent on the way.
        for node in ("node-a", "node-b"):
            poll(lambda: any(line.get("node") == node
                             for line in self.operators["central"].logged(
                                 "agent presence: an agent came")),
                 f"the assigner to see the agent of {node}", 40)
        for name, (spec_node, label, vcpus) in OBJECTS.items():
            self.apply(name, spec_node, label, vcpus)

    def start_operator(self, name, account, args):
        token = self.plane.service_account_token(SYSTEM, account)
        kubeconfig = self.plane.write_kubeconfig(os.path.join(self.workdir, f"{name}.kubeconfig"),
                                                 token=token, namespace=NS)
        self.operators[name] = Operator(self.workdir, name, kubeconfig, args).start()

    def __exit__(self, exc_type, exc, tb):
        for operator in self.operators.values():
            operator.stop()
        self.plane.stop()
        if exc_type is None and not self.failed and not os.environ.get("KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print(f"  work directory kept: {self.workdir}")
            for operator in self.operators.values():
                print(f"  --- {operator.name} log (last lines) ---\n{operator.tail()}")

    # ---- objects
    def apply(self, name, spec_node, label, vcpus):
        metadata = {"name": name, "namespace": NS}
        if label:
            metadata["labels"] = {NODE_LABEL: label}
        spec = {"cpu": {"vcpus": vcpus}}
        if spec_node:
            spec["nodeName"] = spec_node
        self.plane.kubectl("apply", "-f", "-", input_text=json.dumps({
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": metadata, "spec": spec}))

    def get(self, name):
        status, body = self.plane.get(f"/apis/hotplug.dev/v1alpha1/namespaces/{NS}/elasticvms/"
                                      f"{name}")
        expect(status == 200, f"GET {name}: {status} {body}")
        return body

    def patch_spec(self, name, spec):
        status, body = self.plane.request(
            "PATCH", f"/apis/hotplug.dev/v1alpha1/namespaces/{NS}/elasticvms/{name}",
            {"spec": spec}, content_type="application/merge-patch+json")
        expect(status == 200, f"PATCH {name}: {status} {body}")
        return body

    def ready(self, name):
        for condition in self.get(name).get("status", {}).get("conditions", []):
            if condition.get("type") == "Ready":
                return condition
        return None

    def converged(self, name, vcpus):
        vm = self.get(name)
        status = vm.get("status") or {}
        ready = self.ready(name) or {}
        return (status.get("vcpus", {}).get("current") == vcpus and
                ready.get("status") == "True" and
                status.get("observedGeneration") == vm["metadata"]["generation"])

    def stepped_by(self, node, name):
        """The agent of `node`'s "step done" log lines for object `name`, in order."""
        return [line for line in self.operators[node].logged("step done")
                if line.get("object") == f"{NS}/{name}"]

    def audit(self):
        entries = []
        with open(self.audit_log, encoding="utf-8") as handle:
            for raw in handle:
                try:
                    entries.append(json.loads(raw))
                except ValueError:
                    pass
        return entries


SCENARIO = None


def scenario():
    return SCENARIO


def check_objects_reach_their_node():
    s = scenario()
    for name, node, vcpus in (("a1", "node-a", 2), ("a2", "node-a", 3), ("b1", "node-b", 2),
                              ("b2", "node-b", 2)):
        poll(lambda: s.converged(name, vcpus), f"{name} to converge on {node}", 60)
        labels = s.get(name)["metadata"].get("labels", {})
        expect(labels.get(NODE_LABEL) == node, f"{name} labelled {labels}, not {node}")
        steps = [line for other in ("node-a", "node-b") if other != node
                 for line in s.stepped_by(other, name)]
        expect(not steps, f"the other agent stepped {name}: {steps}")
        expect(s.stepped_by(node, name), f"{node}'s agent took no step for {name}")
    # b1 came labelled for node-a: that agent released it before the assigner relabelled.
    released = [line for line in s.operators["node-a"].logged(
        "released an ElasticVM for another node") if line.get("object") == f"{NS}/b1"]
    expect(released, "node-a's agent never released b1")


def check_unserved_objects_are_reported():
    s = scenario()
    for name, reason, words in (("nowhere", "NoNode", "names no node"),
                                ("ghost", "NoAgent", f"{AGENT_LEASES}/hotplug-agent-node-z")):
        ready = poll(lambda: (s.ready(name) or {}).get("reason") == reason and s.ready(name),
                     f"{name} to be reported {reason}", 30)
        expect(ready["status"] == "False" and words in ready["message"],
               f"{name}: {ready}")
        events = s.plane.kubectl("-n", NS, "get", "events", "-o", "json",
                                 f"--field-selector=involvedObject.name={name}")
        reasons = {(e["type"], e["reason"]) for e in json.loads(events.stdout)["items"]}
        expect(("Warning", reason) in reasons, f"{name}'s Events: {reasons}")
    expect(s.get("ghost")["metadata"].get("labels", {}).get(NODE_LABEL) == "node-z",
           "ghost is not labelled for node-z")
    calls = {call["domain"] for call in read_call_log(s.calls)}
    expect(not calls & {"nowhere", "ghost"}, f"an agent touched {calls & {'nowhere', 'ghost'}}")


def check_repoint_hands_over_without_a_step_twice():
    s = scenario()
    poll(lambda: s.converged("a1", 2), "a1 to converge on node-a", 60)
    before = len(s.stepped_by("node-a", "a1"))
    # Four plugs of LATENCY_MS each on node-a; once the first is done, move the object
    # and ask for two more vCPUs.
    s.patch_spec("a1", {"cpu": {"vcpus": 6}})
    poll(lambda: len(s.stepped_by("node-a", "a1")) > before, "node-a to start plugging a1", 30)
    s.patch_spec("a1", {"nodeName": "node-b", "cpu": {"vcpus": 8}})
    poll(lambda: s.converged("a1", 8), "a1 to converge with 8 vCPUs on node-b", 60)
    expect(s.get("a1")["metadata"]["labels"].get(NODE_LABEL) == "node-b", "a1 not relabelled")
    old_steps = s.stepped_by("node-a", "a1")[before:]
    new_steps = s.stepped_by("node-b", "a1")
    expect(len(old_steps) >= 2, f"node-a did {len(old_steps)} steps of its pass: the move "
                                f"did not land mid-pass")
    expect(new_steps, "node-b took no step")
    released = [line for line in s.operators["node-a"].logged(
        "released an ElasticVM for another node") if line.get("object") == f"{NS}/a1"]
    expect(released, "node-a's agent never released a1")
    # Millisecond log times, one clock: the old agent's pass ended (its steps are logged
    # when it ends), then it wrote the release, and only after that did the new agent
    # receive the object at all (so it cannot have stepped before).
    received = [line for line in s.operators["node-b"].lines()
                if line.get("object") == f"{NS}/a1" and
                line.get("msg") in ("listed object", "watch event")]
    expect(received, "node-b never received a1")
    expect(old_steps[-1]["time"] <= released[0]["time"] <= received[0]["time"] <=
           new_steps[0]["time"],
           f"not in order: node-a's last step {old_steps[-1]['time']}, its release "
           f"{released[0]['time']}, node-b received a1 {received[0]['time']}, node-b's first "
           f"step {new_steps[0]['time']}")
    enabled = check_no_step_twice(read_call_log(s.calls),
                                  {name: 1 for name in OBJECTS})
    expect(len(enabled["a1"]) == 8, f"a1 ends with vCPUs {sorted(enabled['a1'])}")
    print(f"  node-a did {len(old_steps)} steps after the move was asked, released a1 at "
          f"{released[0]['time']}; node-b received it at {received[0]['time']} and did "
          f"{len(new_steps)} steps")


def check_each_agent_receives_only_its_own():
    s = scenario()
    # What the server was asked: every LIST/WATCH of ElasticVMs by an agent selects its node.
    agents = {"node-a": None, "node-b": None}
    seen_requests = {node: 0 for node in agents}
    for entry in s.audit():
        user = entry.get("user", {}).get("username", "")
        uri = entry.get("requestURI", "")
        if user != f"system:serviceaccount:{SYSTEM}:hotplug-operator" or \
                "/elasticvms" not in uri or entry.get("verb") not in ("list", "watch"):
            continue
        for node in agents:
            if f"labelSelector=hotplug.dev%2Fnode%3D{node}" in uri:
                seen_requests[node] += 1
                break
        else:
            raise CheckFailed(f"an agent listed or watched without its selector: {uri}")
    expect(all(seen_requests.values()), f"LIST/WATCH requests per agent: {seen_requests}")
    # What each agent decoded: only objects labelled for its node.
    for node in agents:
        lines = [line for line in s.operators[node].lines()
                 if line.get("msg") in ("listed object", "watch event") and line.get("object")]
        expect(lines, f"{node} logged no object it received")
        foreign = [line for line in lines if line.get("node") != node and
                   not (line.get("msg") == "watch event" and line.get("type") == "DELETED")]
        expect(not foreign, f"{node} received objects of other nodes: {foreign[:3]}")
        names = {line["object"].split("/")[1] for line in lines}
        expect(not names & {"nowhere", "ghost"}, f"{node} received {names}")
        print(f"  {node}: {len(lines)} objects received ({sorted(names)}) over "
              f"{seen_requests[node]} LIST/WATCH requests, all selecting {node}")


def check_nobody_was_forbidden():
    s = scenario()
    forbidden = [(e.get("user", {}).get("username"), e.get("verb"), e.get("requestURI"))
                 for e in s.audit()
                 if e.get("responseStatus", {}).get("code") == 403 and
                 e.get("user", {}).get("username", "").startswith(
                     f"system:serviceaccount:{SYSTEM}:")]
    expect(not forbidden, f"403s: {forbidden[:5]}")


# Grants a part holds for a path this run does not take; everything else it is granted it
# must have used. (part, verb, resource): why.
NOT_TAKEN_HERE = {
    ("agent", "get", "elasticvms"): "the re-read after a status write's 409",
    ("agent", "patch", "events"): "a repeated Event, counted up",
    ("agent", "get", "leases"): "reading the Lease a previous pod of the node left",
    ("central", "get", "elasticvms"): "the re-read after a status write's 409",
    ("central", "patch", "events"): "a repeated Event, counted up",
}
# part: (its ServiceAccount, [(kind, name, namespace of a Role)]).
PARTS = {"agent": ("hotplug-operator", [("clusterrole", "hotplug-operator", None),
                                        ("role", "hotplug-operator-agent-lease", AGENT_LEASES)]),
         "central": ("hotplug-operator-central",
                     [("clusterrole", "hotplug-operator-central", None),
                      ("role", "hotplug-operator-leader-election", SYSTEM),
                      ("role", "hotplug-operator-agent-leases-reader", AGENT_LEASES)])}


def granted(plane, kind, name, namespace):
    """{(verb, resource[/subresource])} of a (Cluster)Role as the server holds it."""
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    rules = json.loads(plane.kubectl(*args).stdout)["rules"]
    return {(verb, resource) for rule in rules for resource in rule["resources"]
            for verb in rule["verbs"]}


def check_each_part_used_exactly_its_grants():
    """deploy/'s RBAC is least privilege: each verb a part is granted was used by it in this
    run (its requests in the audit log), or is on NOT_TAKEN_HERE with the path that uses it;
    and (check_nobody_was_forbidden) nothing it asked was refused."""
    s = scenario()
    # An agent renews its Lease every 10 s: a run shorter than that shows no update yet.
    agent_user = f"system:serviceaccount:{SYSTEM}:{PARTS['agent'][0]}"
    poll(lambda: any(e.get("user", {}).get("username") == agent_user and
                     e.get("verb") == "update" and
                     (e.get("objectRef") or {}).get("resource") == "leases"
                     for e in s.audit()), "an agent's first Lease renewal", 30)
    unused = []
    for part, (account, roles) in PARTS.items():
        grants = set().union(*(granted(s.plane, kind, name, namespace)
                               for kind, name, namespace in roles))
        used = set()
        for entry in s.audit():
            ref = entry.get("objectRef") or {}
            if entry.get("user", {}).get("username") != \
                    f"system:serviceaccount:{SYSTEM}:{account}" or not ref.get("resource"):
                continue
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource")
                                          else "")
            used.add((entry["verb"], resource))
        expect(used <= grants, f"{part} made calls it is not granted: {sorted(used - grants)}")
        for verb, resource in sorted(grants - used):
            if (part, verb, resource) not in NOT_TAKEN_HERE:
                unused.append(f"{part}: {verb} {resource}")
        taken = {(verb, resource) for (p, verb, resource) in NOT_TAKEN_HERE if p == part}
        expect(taken <= grants, f"NOT_TAKEN_HERE names what {part} is not granted: "
                                f"{sorted(taken - grants)}")
        print(f"  {part}: used {len(used)} of its {len(grants)} grants "
              f"({len(grants - used)} on paths not taken here)")
    expect(not unused, f"granted but never used: {unused}")


def check_an_agent_cannot_touch_the_central_lease():
    """The real authorizer, asked as the agents' ServiceAccount: it may write Leases where it
    renews its own (by any name: node names are not known at install), and none in
    hotplug-system, where the central's leader-election Lease is; the central may list the
    agents' Leases and write none of them."""
    s = scenario()

    def can(account, verb, resource, namespace):
        result = s.plane.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as",
                                 f"system:serviceaccount:{SYSTEM}:{account}", check=False)
        expect(result.returncode in (0, 1), f"kubectl auth can-i failed: {result.stderr}")
        return result.stdout.strip() == "yes"

    leases = "leases.coordination.k8s.io"
    agent, central = PARTS["agent"][0], PARTS["central"][0]
    cases = [(agent, "update", leases + "/hotplug-agent-node-a", AGENT_LEASES, True),
             (agent, "create", leases, AGENT_LEASES, True),
             (agent, "update", leases + "/hotplug-operator", SYSTEM, False),
             (agent, "get", leases + "/hotplug-operator", SYSTEM, False),
             (agent, "create", leases, SYSTEM, False),
             (agent, "delete", leases + "/hotplug-agent-node-b", AGENT_LEASES, False),
             (central, "list", leases, AGENT_LEASES, True),
             (central, "update", leases + "/hotplug-agent-node-a", AGENT_LEASES, False),
             (central, "create", leases, AGENT_LEASES, False),
             (central, "update", leases + "/hotplug-operator", SYSTEM, True)]
    wrong = [case[:4] for case in cases if can(*case[:4]) != case[4]]
    expect(not wrong, f"the authorizer's answer differs for: {wrong}")
    # The central's own Lease is really where the agents cannot reach it.
    status, _ = s.plane.get(f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM}/leases/"
                            "hotplug-operator")
    expect(status == 200, f"no central Lease in {SYSTEM} ({status})")
    print(f"  {len(cases)} authorizer answers as expected; the central's Lease is in {SYSTEM}, "
          f"the agents' in {AGENT_LEASES}")


def check_a_node_whose_agent_stopped_is_reported():
    """Last: stops node-b's agent. Its Lease is not renewed; once it runs out (40 s) the
    assigner reports node-b's objects NoAgent."""
    s = scenario()
    poll(lambda: s.converged("b2", 2), "b2 to converge on node-b", 60)
    stopped = time.monotonic()
    s.operators["node-b"].stop()
    ready = poll(lambda: (s.ready("b2") or {}).get("reason") == "NoAgent" and s.ready("b2"),
                 "b2 to be reported NoAgent after its agent stopped", 90, 0.5)
    waited = time.monotonic() - stopped
    expect("node node-b" in ready["message"], ready["message"])
    # Not before the Lease ran out: a restart within its duration changes nothing.
    expect(waited >= 25, f"reported {waited:.0f}s after the agent stopped, before its Lease "
                         f"(40 s, renewed every 10 s) ran out")
    expect(s.get("b2")["metadata"]["labels"].get(NODE_LABEL) == "node-b", "b2 relabelled")
    print(f"  b2 reported NoAgent {waited:.0f} s after node-b's agent stopped")


def main():
    global SCENARIO
    require_assets()
    with Scenario() as SCENARIO:
        code = run_checks([
            ("objects_reach_their_node", check_objects_reach_their_node),
            ("unserved_objects_are_reported", check_unserved_objects_are_reported),
            ("repoint_hands_over_without_a_step_twice",
             check_repoint_hands_over_without_a_step_twice),
            ("each_agent_receives_only_its_own", check_each_agent_receives_only_its_own),
            ("nobody_was_forbidden", check_nobody_was_forbidden),
            ("each_part_used_exactly_its_grants", check_each_part_used_exactly_its_grants),
            ("an_agent_cannot_touch_the_central_lease",
             check_an_agent_cannot_touch_the_central_lease),
            ("a_node_whose_agent_stopped_is_reported",
             check_a_node_whose_agent_stopped_is_reported),
        ], sys.argv)
        SCENARIO.failed = code != 0
    return code


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"node_scope_test: {time.monotonic() - started:.1f}s")
    sys.exit(code)

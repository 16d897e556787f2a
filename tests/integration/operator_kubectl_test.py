#!/usr/bin/env python3
"""What a user sees with kubectl on a real kube-apiserver + etcd while hotplug-operator
(--hypervisor=fake, a token of deploy/'s ServiceAccount) works: `kubectl explain` reads the
CRD's schema, `kubectl get` shows the printer columns with the operator's numbers,
`kubectl describe` shows the conditions and the operator's Events, the CRD's OpenAPI
validation rejects bad specs with the server's own message (nothing stored, nothing
touched), the status subresource keeps spec and status apart, and the ServiceAccount may do
exactly what deploy/rbac.yaml grants (the operator is never refused; the test is).

Run: python3 tests/integration/operator_kubectl_test.py [path/to/hotplug-operator-testing] [-k NAME]
"""

import json
import sys

from operator_lib import (AGENT_LEASES, SYSTEM_NAMESPACE, Cluster, check_no_step_twice,  # noqa: E402
                          expect, poll, read_call_log, require_assets, run_checks)

COLUMNS = ["NAME", "DOMAIN", "NODE", "VCPUS", "CURRENT", "RECOMMENDED", "MEMORY", "READY", "AGE"]


def start(cluster, domains=({"name": "web-01", "maximumVcpus": 8, "currentVcpus": 1},)):
    path = cluster.write_domains(list(domains))
    calls_path = cluster.path("calls.log")
    operator = cluster.operator("operator", [f"--namespace={cluster.namespace}",
                                             f"--fake-domains-file={path}",
                                             f"--fake-call-log={calls_path}"])
    poll(lambda: operator.probe("/readyz") == 200, "the operator's cache to sync")
    return operator, calls_path


def table(cluster, *args):
    """`kubectl get` as a list of rows, each a dict by column header."""
    lines = cluster.kubectl("get", *args).stdout.splitlines()
    expect(lines, f"kubectl get {args}: no output")
    header = lines[0].split()
    starts = [lines[0].index(name) for name in header]
    rows = []
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in
                 zip(starts, starts[1:] + [len(line) + 1])]
        rows.append(dict(zip(header, cells)))
    return header, rows


def check_explain_get_describe_events():
    with Cluster("kubectl-flows") as cluster:
        operator, calls_path = start(cluster)
        # The OpenAPI document is published a moment after the CRD is Established: poll.
        explained = poll(lambda: (lambda r: r.returncode == 0 and r.stdout)(
            cluster.kubectl("explain", "evm.spec.cpu", check=False)),
            "kubectl explain to know the CRD", 30, 0.2)
        for words in ("vcpus", "<integer>", "Desired number of enabled vCPUs",
                      "enum: auto, agent, none"):
            expect(words in explained, f"kubectl explain evm.spec.cpu lacks {words!r}:\n"
                                       f"{explained}")

        cluster.apply_vm("web-01", 3, domain="web-01")
        poll(lambda: cluster.converged("web-01", 3), "web-01 to converge on 3")

        # Printer columns, filled by the operator's status.
        header, rows = table(cluster, "evm")
        expect(header == COLUMNS, f"kubectl get evm columns: {header}")
        expect(len(rows) == 1, f"rows: {rows}")
        row = rows[0]
        want = {"NAME": "web-01", "DOMAIN": "web-01", "NODE": "", "VCPUS": "3",
                "CURRENT": "3", "MEMORY": "1Gi", "READY": "True"}
        expect({key: row[key] for key in want} == want, f"kubectl get evm row: {row}")
        # The short name, the category-free plural and the full name are one resource.
        for name in ("elasticvms", "elasticvm.hotplug.dev"):
            expect(table(cluster, name)[1][0]["NAME"] == "web-01", f"kubectl get {name}")

        # Above the domain's maximum: the row and the conditions say why; nothing changed.
        cluster.patch_vcpus("web-01", 12)

        def refused():
            vm = cluster.get_vm("web-01")
            ready = [c for c in vm["status"].get("conditions", []) if c["type"] == "Ready"]
            return (ready and ready[0]["reason"] == "ExceedsMaximum" and
                    vm["status"]["observedGeneration"] == vm["metadata"]["generation"] and vm)
        poll(refused, "Ready=False ExceedsMaximum for generation 2")
        row = table(cluster, "evm", "web-01")[1][0]
        expect((row["VCPUS"], row["CURRENT"], row["READY"]) == ("12", "3", "False"),
               f"kubectl get evm web-01 after asking 12 of 8: {row}")

        # describe: spec, status conditions and the operator's Events, as a person reads them.
        described = cluster.kubectl("describe", "evm", "web-01").stdout
        for words in ("Vcpus:         12", "ExceedsMaximum", "maximum of 8 vCPUs",
                      "Events:", "VcpuPlugged", "plugged vCPU 2", "hotplug-operator"):
            expect(words in described, f"kubectl describe lacks {words!r}:\n{described}")

        events = poll(lambda: (lambda items: len({e["reason"] for e in items}) >= 3 and items)(
            cluster.events(**{"involvedObject.name": "web-01"})), "the three kinds of Events")
        kinds = {(e["type"], e["reason"]) for e in events}
        expect({("Normal", "VcpuPlugged"), ("Normal", "Synced"),
                ("Warning", "ExceedsMaximum")} <= kinds, f"Events: {kinds}")
        for event in events:
            expect(event["source"].get("component") == "hotplug-operator" and
                   event["involvedObject"]["kind"] == "ElasticVM" and
                   event["involvedObject"]["uid"] == cluster.get_vm("web-01")["metadata"]["uid"],
                   f"Event not tied to the object: {event}")
        calls = read_call_log(calls_path)
        check_no_step_twice(calls, {"web-01": 1})
        expect(len(calls) == 2, f"{len(calls)} vCPU calls for 2 needed (12 > 8 changes none)")


def check_status_subresource():
    with Cluster("status-subresource") as cluster:
        start(cluster)
        cluster.apply_vm("web-01", 4, domain="web-01")
        vm = poll(lambda: cluster.converged("web-01", 4), "web-01 to converge on 4")
        # The operator's status writes never bump the generation (only spec changes do).
        expect(vm["metadata"]["generation"] == 1, f"generation {vm['metadata']['generation']}")
        writes = [e for e in cluster.operator_requests() if e.get("stage") == "ResponseComplete"
                  and (e.get("objectRef") or {}).get("subresource") == "status"]
        expect(writes and all(e["verb"] == "update" for e in writes),
               f"the operator's status writes: {[e['verb'] for e in writes]}")
        expect(all(e["responseStatus"]["code"] == 200 for e in writes),
               f"status write answers: {[e['responseStatus']['code'] for e in writes]}")

        # A user's status in a write to the main resource is dropped by the server.
        result = cluster.kubectl("patch", "evm", "web-01", "--type=merge", "-p",
                                 json.dumps({"status": {"vcpus": {"current": 99}}}))
        expect("no change" in result.stdout, f"patch of status via the main resource: "
                                             f"{result.stdout}")
        expect(cluster.get_vm("web-01")["status"]["vcpus"]["current"] == 4, "status changed")

        # Through /status it lands (generation untouched); the operator, level-triggered,
        # writes back what the hypervisor says.
        written = json.loads(cluster.kubectl(
            "patch", "evm", "web-01", "--subresource=status", "--type=merge", "-o", "json",
            "-p", json.dumps({"status": {"vcpus": {"current": 99}}})).stdout)
        expect(written["status"]["vcpus"]["current"] == 99 and
               written["metadata"]["generation"] == 1, f"status patch: {written['status']}")
        poll(lambda: (lambda vm: vm["metadata"]["resourceVersion"] !=
                      written["metadata"]["resourceVersion"] and
                      vm["status"]["vcpus"]["current"] == 4)(cluster.get_vm("web-01")),
             "the operator to correct the hand-written status")


# (spec, the server's message): kube-apiserver's own words, as kubectl prints them.
INVALID_SPECS = [
    ({"cpu": {"vcpus": 0}},
     'spec.cpu.vcpus: Invalid value: 0: spec.cpu.vcpus in body should be greater than or '
     'equal to 1'),
    ({"cpu": {"vcpus": 5000}},
     'spec.cpu.vcpus: Invalid value: 5000: spec.cpu.vcpus in body should be less than or '
     'equal to 4096'),
    ({"cpu": {"vcpus": "two"}},
     'spec.cpu.vcpus: Invalid value: "string": spec.cpu.vcpus in body must be of type '
     'integer: "string"'),
    ({"cpu": {"vcpus": 2}, "memory": {"size": "2 GB"}},
     'spec.memory.size: Invalid value: "2 GB": spec.memory.size in body should match'),
    ({"cpu": {"vcpus": 2}, "memory": {"size": "1.5Gb"}},
     'spec.memory.size: Invalid value: "1.5Gb": spec.memory.size in body should match'),
    ({"cpu": {"vcpus": 2, "guestOnline": "sometimes"}},
     'spec.cpu.guestOnline: Unsupported value: "sometimes": supported values: "auto", '
     '"agent", "none"'),
    ({"cpu": {"vcpus": 2}, "memory": {"size": "2Gi", "method": "hotwire"}},
     'spec.memory.method: Unsupported value: "hotwire"'),
    ({"cpu": {"vcpus": 2}, "domain": ""},
     'spec.domain: Invalid value: "": spec.domain in body should be at least 1 chars long'),
]


def check_validation_rejects_bad_specs():
    with Cluster("validation") as cluster:
        operator, calls_path = start(cluster)
        cluster.apply_vm("web-01", 2, domain="web-01")
        poll(lambda: cluster.converged("web-01", 2), "web-01 to converge on 2")
        before = cluster.get_vm("web-01")
        for spec, message in INVALID_SPECS:
            # A new object: refused, not stored.
            manifest = {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                        "metadata": {"name": "bad"}, "spec": spec}
            result = cluster.kubectl("apply", "-f", "-", input_text=json.dumps(manifest),
                                     check=False)
            expect(result.returncode != 0, f"{spec} was accepted")
            # (With a CEL rule on spec.cpu, a schema error comes as a list: "is invalid: \n* ...".)
            expect('The ElasticVM "bad" is invalid: ' in result.stderr and message in result.stderr,
                   f"{spec}: kubectl said {result.stderr.strip()!r}, want {message!r}")
            expect(cluster.get_vm("bad") is None, f"{spec}: the refused object was stored")
            # A change to an existing object: refused, the stored spec untouched.
            result = cluster.kubectl("patch", "evm", "web-01", "--type=merge", "-p",
                                     json.dumps({"spec": spec}), check=False)
            expect(result.returncode != 0 and message in result.stderr,
                   f"patch with {spec}: {result.stderr.strip()!r}")
        after = cluster.get_vm("web-01")
        expect(after["metadata"]["generation"] == before["metadata"]["generation"] and
               after["spec"] == before["spec"], f"the refused patches changed web-01: "
                                                f"{after['spec']}")
        # A good spec still goes through, and only it reached the hypervisor.
        cluster.patch_vcpus("web-01", 3)
        poll(lambda: cluster.converged("web-01", 3), "web-01 to converge on 3")
        calls = read_call_log(calls_path)
        check_no_step_twice(calls, {"web-01": 1})
        expect(len(calls) == 2, f"{len(calls)} vCPU calls for 2 needed")


# What each ServiceAccount of deploy/ may do: (account, verb, resource, namespace, allowed);
# "resource:sub" names a subresource, "resource/name" one object.
PERMISSIONS = [
    ("hotplug-operator", "list", "elasticvms.hotplug.dev", "any-namespace", True),
    ("hotplug-operator", "watch", "elasticvms.hotplug.dev", "any-namespace", True),
    ("hotplug-operator", "get", "elasticvms.hotplug.dev", "any-namespace", True),
    ("hotplug-operator", "update", "elasticvms.hotplug.dev:status", "any-namespace", True),
    ("hotplug-operator", "create", "events", "any-namespace", True),
    ("hotplug-operator", "patch", "events", "any-namespace", True),
    # The operator never writes a spec, never deletes, never reads other kinds.
    ("hotplug-operator", "update", "elasticvms.hotplug.dev", "any-namespace", False),
    ("hotplug-operator", "patch", "elasticvms.hotplug.dev", "any-namespace", False),
    ("hotplug-operator", "delete", "elasticvms.hotplug.dev", "any-namespace", False),
    ("hotplug-operator", "create", "elasticvms.hotplug.dev", "any-namespace", False),
    ("hotplug-operator", "patch", "elasticvms.hotplug.dev:status", "any-namespace", False),
    ("hotplug-operator", "list", "events", "any-namespace", False),
    ("hotplug-operator", "get", "secrets", "any-namespace", False),
    ("hotplug-operator", "list", "pods", "any-namespace", False),
    # An agent renews its Lease hotplug-agent-<node> in the agents' Lease namespace. Node
    # names are not known at install, so its get/update there are not limited by name; the
    # central's election Lease is in the system namespace, which it cannot touch at all. It
    # never deletes or lists Leases, nor touches them elsewhere.
    ("hotplug-operator", "get", "leases/hotplug-agent-node-a", AGENT_LEASES, True),
    ("hotplug-operator", "create", "leases", AGENT_LEASES, True),
    ("hotplug-operator", "update", "leases/hotplug-agent-node-a", AGENT_LEASES, True),
    ("hotplug-operator", "delete", "leases/hotplug-agent-node-a", AGENT_LEASES, False),
    ("hotplug-operator", "list", "leases", AGENT_LEASES, False),
    ("hotplug-operator", "get", "leases/hotplug-operator", SYSTEM_NAMESPACE, False),
    ("hotplug-operator", "update", "leases/hotplug-operator", SYSTEM_NAMESPACE, False),
    ("hotplug-operator", "create", "leases", SYSTEM_NAMESPACE, False),
    ("hotplug-operator", "create", "leases", "default", False),
    ("hotplug-operator-central", "create", "leases", SYSTEM_NAMESPACE, True),
    ("hotplug-operator-central", "get", "leases/hotplug-operator", SYSTEM_NAMESPACE, True),
    ("hotplug-operator-central", "update", "leases/hotplug-operator", SYSTEM_NAMESPACE, True),
    ("hotplug-operator-central", "update", "leases/someone-else", SYSTEM_NAMESPACE, False),
    ("hotplug-operator-central", "get", "leases/hotplug-operator", "default", False),
    ("hotplug-operator-central", "delete", "leases/hotplug-operator", SYSTEM_NAMESPACE, False),
    ("hotplug-operator-central", "watch", "elasticvms.hotplug.dev", "any-namespace", True),
    ("hotplug-operator-central", "update", "elasticvms.hotplug.dev:status", "any-namespace",
     True),
    # The central sets the hotplug.dev/node label with a merge patch; it never updates,
    # creates or deletes an ElasticVM. It lists the agents' Leases, and writes none.
    ("hotplug-operator-central", "patch", "elasticvms.hotplug.dev", "any-namespace", True),
    ("hotplug-operator-central", "update", "elasticvms.hotplug.dev", "any-namespace", False),
    ("hotplug-operator-central", "delete", "elasticvms.hotplug.dev", "any-namespace", False),
    ("hotplug-operator-central", "create", "elasticvms.hotplug.dev", "any-namespace", False),
    ("hotplug-operator-central", "list", "leases", AGENT_LEASES, True),
    ("hotplug-operator-central", "list", "leases", SYSTEM_NAMESPACE, False),
    ("hotplug-operator-central", "update", "leases/hotplug-agent-node-a", AGENT_LEASES, False),
]


def check_least_privilege():
    """The ServiceAccounts get exactly deploy/'s grants; the operator, working a full change
    under its token, is never refused, and a spec write with that token is."""
    with Cluster("least-privilege") as cluster:
        wrong = []
        for account, verb, resource, namespace, allowed in PERMISSIONS:
            resource, _, subresource = resource.partition(":")
            answer = cluster.kubectl(
                "auth", "can-i", verb, resource, f"--subresource={subresource}", "-n", namespace,
                f"--as=system:serviceaccount:{SYSTEM_NAMESPACE}:{account}", check=False)
            if (answer.stdout.strip() == "yes") != allowed:
                wrong.append(f"{account} {verb} {resource}:{subresource} in {namespace}: "
                             f"{answer.stdout.strip()}, want {'yes' if allowed else 'no'}")
        expect(not wrong, "RBAC differs from deploy/rbac.yaml's intent:\n  " +
               "\n  ".join(wrong))

        operator, calls_path = start(cluster)
        cluster.apply_vm("web-01", 5, domain="web-01")
        poll(lambda: cluster.converged("web-01", 5), "web-01 to converge on 5")
        cluster.patch_vcpus("web-01", 2)
        poll(lambda: cluster.converged("web-01", 2), "web-01 to converge on 2")
        expect(operator.stop() == 0, "the operator's exit code")
        # Every call the operator made, as the server recorded it: its ServiceAccount, and
        # each verb the ClusterRole grants was used and answered without a 403.
        made = {(e["verb"], (e.get("objectRef") or {}).get("resource"),
                 (e.get("objectRef") or {}).get("subresource") or "")
                for e in cluster.operator_requests()}
        for needed in (("list", "elasticvms", ""), ("watch", "elasticvms", ""),
                       ("update", "elasticvms", "status"), ("create", "events", "")):
            expect(needed in made, f"the operator never made {needed}: {sorted(made)}")
        users = {e["user"]["username"] for e in cluster.operator_requests()}
        expect(users == {f"system:serviceaccount:{SYSTEM_NAMESPACE}:hotplug-operator"},
               f"the operator's requests came as {users}")
        code = cluster.request(
            "PATCH", f"/apis/hotplug.dev/v1alpha1/namespaces/{cluster.namespace}/elasticvms/"
                     "web-01", body={"spec": {"cpu": {"vcpus": 7}}}, identity="agent",
            content_type="application/merge-patch+json")[0]
        expect(code == 403, f"a spec patch with the operator's token answered {code}")


if __name__ == "__main__":
    require_assets()
    sys.exit(run_checks([
        ("explain_get_describe_events", check_explain_get_describe_events),
        ("status_subresource", check_status_subresource),
        ("validation_rejects_bad_specs", check_validation_rejects_bad_specs),
        ("least_privilege", check_least_privilege),
    ], sys.argv))

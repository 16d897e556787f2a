#!/usr/bin/env python3
"""Two replicas with --leader-elect against one coordination.k8s.io/v1 Lease on a real
kube-apiserver, each with a token of deploy/central's ServiceAccount (the one bound to the
Lease Role, which names the Lease "hotplug-operator" in hotplug-system): exactly one acts;
when it is killed (SIGKILL: no release) the other takes over within the lease duration (+ a
retry period) and carries on from what the hypervisor says; a replica stopped with SIGTERM
releases the Lease so the standby takes over at once. The two replicas share
the fake hypervisor through its call log (each replays the other's changes before a call).
No replica is ever refused (403). The agents' ServiceAccount, which deploy/ grants Leases in
hotplug-system-agents only (its own agent Lease), cannot elect in a namespace of ElasticVMs:
its 403 is seen, which is also what proves that the 403 check of every other test can fail.

Run: python3 tests/integration/operator_leader_election_test.py [path/to/hotplug-operator-testing]
"""

import json
import signal
import sys
import time

from operator_lib import (CENTRAL_LEASE, SYSTEM_NAMESPACE, Cluster, check_no_step_twice, expect,
                          poll, read_call_log, require_assets, run_checks)

LEASE_S, RENEW_S, RETRY_S = 4.0, 3.0, 0.5


def leader_args(cluster, domains, calls_path):
    return [f"--namespace={cluster.namespace}", f"--fake-domains-file={domains}",
            f"--fake-call-log={calls_path}", "--leader-elect",
            f"--leader-elect-namespace={SYSTEM_NAMESPACE}", f"--leader-elect-id={CENTRAL_LEASE}",
            f"--leader-elect-lease-duration={int(LEASE_S)}s",
            f"--leader-elect-renew-deadline={int(RENEW_S)}s",
            f"--leader-elect-retry-period={int(RETRY_S * 1000)}ms"]


def leaders(operators):
    return [op for op in operators if op.logged("leader election: became leader")]


def lease_holder(cluster):
    result = cluster.kubectl("-n", SYSTEM_NAMESPACE, "get", "leases.coordination.k8s.io",
                             CENTRAL_LEASE, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)["spec"].get("holderIdentity")


def check_one_acts_and_the_other_takes_over():
    with Cluster("leader", identity="central") as cluster:
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 16,
                                          "currentVcpus": 1}])
        calls_path = cluster.path("calls.log")
        a = cluster.operator("replica-a", leader_args(cluster, domains, calls_path))
        b = cluster.operator("replica-b", leader_args(cluster, domains, calls_path))
        first = poll(lambda: leaders([a, b]), "a leader")[0]
        standby = b if first is a else a
        poll(lambda: standby.probe("/readyz") == 200, "the standby's cache to sync")
        # Only one leads, also after a few retry periods.
        time.sleep(3 * RETRY_S)  # a window for a wrong second leader to appear; not a sync
        expect(len(leaders([a, b])) == 1, "two leaders")
        holder = lease_holder(cluster)
        expect(holder and first.logged("leader election: became leader")[0]["identity"] ==
               holder, f"the Lease names {holder!r}, not the replica that leads")
        # A user sees the holder in kubectl's columns.
        listed = cluster.kubectl("-n", SYSTEM_NAMESPACE, "get", "leases").stdout
        expect("HOLDER" in listed and holder in listed, f"kubectl get leases:\n{listed}")

        cluster.apply_vm("web-01", 4)
        poll(lambda: cluster.converged("web-01", 4), "web-01 to converge on 4")
        expect(first.logged("step done"), "the leader did not act")
        expect(not standby.logged("step done"), "the standby acted")

        # Kill the leader without a chance to release: the standby takes over after the
        # lease expires.
        killed = time.monotonic()
        first.signal(signal.SIGKILL)
        first.wait_exit(10)
        poll(lambda: standby.logged("leader election: became leader"), "the standby to lead",
             LEASE_S + 10)
        took = time.monotonic() - killed
        print(f"  takeover after SIGKILL: {took:.1f} s (lease {LEASE_S:.0f} s)")
        expect(took <= LEASE_S + 2 * RETRY_S + 1.5, f"takeover took {took:.1f} s")

        cluster.patch_vcpus("web-01", 7)
        poll(lambda: cluster.converged("web-01", 7), "web-01 to converge on 7 under the new leader")
        calls = read_call_log(calls_path)
        check_no_step_twice(calls, {"web-01": 1})
        expect(len(calls) == 6, f"{len(calls)} vCPU calls for 6 needed")

        # A third replica joins; SIGTERM to the leader releases the Lease: quick handover.
        c = cluster.operator("replica-c", leader_args(cluster, domains, calls_path))
        poll(lambda: c.probe("/readyz") == 200, "the new standby's cache to sync")
        released = time.monotonic()
        expect(standby.stop() == 0, "the leader's exit code after SIGTERM")
        expect(standby.logged("leader election: released the lease"), "lease not released")
        poll(lambda: c.logged("leader election: became leader"), "replica-c to lead", LEASE_S + 5)
        print(f"  takeover after SIGTERM (lease released): "
              f"{time.monotonic() - released:.1f} s")
        cluster.patch_vcpus("web-01", 3)
        poll(lambda: cluster.converged("web-01", 3), "web-01 to converge on 3 under replica-c")
        check_no_step_twice(read_call_log(calls_path), {"web-01": 1})


def check_agent_account_cannot_elect():
    """deploy/ gives the agents' account Leases only in hotplug-system-agents (for its own
    hotplug-agent-<node>, which cannot be limited by name: deploy/rbac.yaml): electing
    anywhere else is refused, the replica never leads nor acts, and the 403 check sees the
    refusal."""
    with Cluster("leader-refused", identity="agent") as cluster:
        cluster.allow_forbidden = True  # this check wants the 403 and looks at it itself
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 4,
                                          "currentVcpus": 1}])
        calls_path = cluster.path("calls.log")
        args = [arg for arg in leader_args(cluster, domains, calls_path)
                if not arg.startswith("--leader-elect-namespace=")]
        agent = cluster.operator("agent", args + [
            f"--leader-elect-namespace={cluster.namespace}"])
        poll(lambda: all(cluster.forbidden()), "the refusal in the audit log and the log", 20)
        refused, logged = cluster.forbidden()
        expect(any("leases" in entry and "hotplug-system:hotplug-operator" in entry
                   for entry in refused), f"403s seen: {refused}")
        cluster.apply_vm("web-01", 3)
        poll(lambda: agent.probe("/readyz") == 200, "the replica's cache to sync")
        # A window for a wrong start of the workers; not a sync.
        time.sleep(2 * RETRY_S)
        expect(not agent.logged("leader election: became leader"), "the agent account led")
        expect(not read_call_log(calls_path), "a replica without the Lease acted")
        expect(agent.metric("rest_client_requests_total", code="403") > 0,
               "the 403s are missing from rest_client_requests_total")


if __name__ == "__main__":
    require_assets()
    sys.exit(run_checks([
        ("one_acts_and_the_other_takes_over", check_one_acts_and_the_other_takes_over),
        ("agent_account_cannot_elect", check_agent_account_cannot_elect),
    ], sys.argv))

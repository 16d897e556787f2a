#!/usr/bin/env python3
"""Two replicas with --leader-elect against one coordination.k8s.io/v1 Lease: exactly one
acts; when it is killed (SIGKILL: no release) the other takes over within the lease
duration (+ a retry period) and carries on from what the hypervisor says; a replica stopped
with SIGTERM releases the Lease so the standby takes over at once. The two replicas share
the fake hypervisor through its call log (each replays the other's changes before a call).

Run: python3 tests/integration/operator_leader_election_test.py [path/to/hotplug-operator]
"""

import json
import signal
import sys
import time

from operator_lib import (Cluster, check_no_step_twice, expect, poll, read_call_log,
                          run_checks)

LEASE_S, RENEW_S, RETRY_S = 4.0, 3.0, 0.5


def leader_args(domains, calls_path):
    return ["--namespace=default", f"--fake-domains-file={domains}",
            f"--fake-call-log={calls_path}", "--leader-elect", "--leader-elect-id=hotplug-test",
            f"--leader-elect-lease-duration={int(LEASE_S)}s",
            f"--leader-elect-renew-deadline={int(RENEW_S)}s",
            f"--leader-elect-retry-period={int(RETRY_S * 1000)}ms"]


def leaders(operators):
    return [op for op in operators if op.logged("leader election: became leader")]


def lease_holder(cluster):
    result = cluster.kubectl("-n", "default", "get", "leases.coordination.k8s.io",
                             "hotplug-test", "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)["spec"].get("holderIdentity")


def check_one_acts_and_the_other_takes_over():
    with Cluster("leader") as cluster:
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 16,
                                          "currentVcpus": 1}])
        calls_path = cluster.path("calls.log")
        a = cluster.operator("replica-a", leader_args(domains, calls_path))
        b = cluster.operator("replica-b", leader_args(domains, calls_path))
        first = poll(lambda: leaders([a, b]), "a leader")[0]
        standby = b if first is a else a
        poll(lambda: standby.probe("/readyz") == 200, "the standby's cache to sync")
        # Only one leads, also after a few retry periods.
        time.sleep(3 * RETRY_S)  # a window for a wrong second leader to appear; not a sync
        expect(len(leaders([a, b])) == 1, "two leaders")
        expect(lease_holder(cluster), "no Lease holder")

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
        c = cluster.operator("replica-c", leader_args(domains, calls_path))
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


if __name__ == "__main__":
    sys.exit(run_checks([
        ("one_acts_and_the_other_takes_over", check_one_acts_and_the_other_takes_over),
    ], sys.argv))

#!/usr/bin/env python3
"""hotplug-operator keeps its promises when the API server misbehaves. For each fault the
test API server injects -- watches closed every N events (cleanly and abruptly), 410 Gone on
reconnect (as an ERROR event and as HTTP 410), 409 Conflict on every other status write,
HTTP 500 for a while -- a series of `kubectl patch` changes still converges, no vCPU step is
done twice (the fake hypervisor's call log), and no status is lost (the final status matches
what the hypervisor has and the object's generation).

These run on the project's own test API server (tests/apiserver/, operator_lib.TestApiCluster),
not on kube-apiserver: these are the faults a real server cannot be made to produce on cue
(an HTTP 500 window, a 409 on every other write, a 410 on every reconnect, a watch cut after
N events). The faults a real server does produce -- kube-apiserver restarted, etcd compacted
under a watch, watches ended by the server's timeout -- are operator_real_faults_test.py.

Run: python3 tests/integration/operator_faults_test.py [path/to/hotplug-operator-testing] [-k NAME]
"""

import json
import sys
import time

from operator_lib import (TestApiCluster, check_no_step_twice, expect, poll, read_call_log,
                          run_checks)

TARGETS = (3, 6, 2, 5, 8, 4)
OPERATOR_VERBS = ["list", "watch", "update"]  # not kubectl's patch (its GET may be hit)


def drive(cluster, calls_path, name="web-01", targets=TARGETS, settle=None):
    """Patches spec.cpu.vcpus through `targets`, each time waiting for convergence. Returns
    the number of vCPU changes the targets need (from 1 enabled)."""
    needed, current = 0, 1
    for target in targets:
        cluster.patch_vcpus(name, target)
        poll(lambda: cluster.converged(name, target), f"{name} to converge on {target}", 60)
        if settle:
            settle()
        needed += abs(target - current)
        current = target
    calls = read_call_log(calls_path)
    enabled = check_no_step_twice(calls, {name: 1})
    expect(len(enabled[name]) == current, f"{name}: {len(enabled[name])} enabled, want {current}")
    expect(len(calls) == needed, f"{name}: {len(calls)} vCPU calls for {needed} needed changes")
    # No status lost: what the object says is what the hypervisor has, for this generation.
    vm = cluster.get_vm(name)
    expect(vm["status"]["vcpus"]["current"] == current, f"status: {vm['status']['vcpus']}")
    expect(vm["status"]["observedGeneration"] == vm["metadata"]["generation"],
           "observedGeneration lags the generation")
    return needed


def start(cluster, extra=()):
    domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 16, "currentVcpus": 1}])
    calls_path = cluster.path("calls.log")
    operator = cluster.operator("operator", ["--namespace=default",
                                             f"--fake-domains-file={domains}",
                                             f"--fake-call-log={calls_path}"] + list(extra))
    poll(lambda: operator.probe("/readyz") == 200, "the operator's cache to sync")
    cluster.apply_vm("web-01", 1)
    poll(lambda: cluster.converged("web-01", 1), "web-01 to report 1 vCPU")
    return operator, calls_path


def watch_requests(cluster):
    return [r for r in cluster.requests() if r.get("verb") == "watch" and
            "hotplug-operator" in (r.get("user_agent") or "")]


def list_requests(cluster):
    return [r for r in cluster.requests() if r.get("verb") == "list" and
            "hotplug-operator" in (r.get("user_agent") or "")]


def faults_at_start(**faults):
    """A fault that a watch reads when it opens must be armed before the operator starts."""
    return ["--faults", json.dumps(faults)]


def check_watch_closed_every_2_events():
    for abrupt in (False, True):
        with TestApiCluster("watch-close", faults_at_start(
                watch_close_after_events=2, watch_close_abrupt=abrupt)) as cluster:
            operator, calls_path = start(cluster)
            drive(cluster, calls_path)
            watches = watch_requests(cluster)
            expect(len(watches) >= 4, f"only {len(watches)} watches: the fault never hit")
            # Reconnects resume from the last resourceVersion seen; no relist was needed.
            resumed = [w for w in watches[1:] if w["query"].get("resourceVersion") not in
                       (None, "", "0")]
            expect(len(resumed) == len(watches) - 1, "a reconnect did not name a resourceVersion")
            expect(len(list_requests(cluster)) == 1,
                   f"{len(list_requests(cluster))} lists: a closed watch must not relist")


def check_gone_on_reconnect_relists():
    for mode in ("event", "http"):
        # Every reconnect gets 410, and watches end after one event: only relists keep the
        # cache fresh.
        with TestApiCluster(f"gone-{mode}", faults_at_start(
                watch_close_after_events=1, watch_gone_on_reconnect=True,
                watch_gone_mode=mode)) as cluster:
            operator, calls_path = start(cluster)
            drive(cluster, calls_path, targets=(4, 2, 5))
            lists = len(list_requests(cluster))
            expect(lists >= 3, f"{mode}: {lists} lists; 410 must make the informer list again")
            cluster.faults(reset=True)
            cluster.patch_vcpus("web-01", 7)
            poll(lambda: cluster.converged("web-01", 7), "convergence after the fault ended", 60)
            enabled = check_no_step_twice(read_call_log(calls_path), {"web-01": 1})
            expect(len(enabled["web-01"]) == 7, "fake domain out of step")


def check_status_conflict_every_other_write():
    with TestApiCluster("conflict") as cluster:
        operator, calls_path = start(cluster)
        before = len(cluster.requests())
        cluster.faults(status_conflict_every=2)
        drive(cluster, calls_path)
        writes = [r for r in cluster.requests(before) if r.get("subresource") == "status"
                  and r.get("method") in ("PUT", "PATCH")]
        conflicts = [w for w in writes if w.get("code") == 409]
        expect(conflicts, "no status write met a conflict")
        expect(all(w.get("code") in (200, 409) for w in writes),
               f"unexpected status write answers: {[w.get('code') for w in writes]}")


def check_server_errors_for_a_while():
    with TestApiCluster("errors") as cluster:
        operator, calls_path = start(cluster)
        # 500 on the operator's requests (list, watch, status update, events) for 4 seconds,
        # starting right after a change was made; kubectl's get/patch still work.
        cluster.patch_vcpus("web-01", 5)
        cluster.faults(errors=[{"prefix": "/apis/hotplug.dev", "code": 500, "seconds": 4,
                                "verbs": OPERATOR_VERBS},
                               {"prefix": "/api/v1/namespaces/default/events", "code": 500,
                                "seconds": 4}])
        start_time = time.monotonic()
        poll(lambda: cluster.converged("web-01", 5), "convergence through 500s", 60)
        print(f"  converged {time.monotonic() - start_time:.1f} s after 4 s of HTTP 500s")
        cluster.faults(errors=[{"prefix": "/apis/hotplug.dev", "code": 500, "seconds": 3,
                                "verbs": OPERATOR_VERBS}])
        drive(cluster, calls_path, targets=(5, 2, 6))
        failed = [r for r in cluster.requests() if r.get("code") == 500]
        expect(failed, "no request met an injected 500")


def check_all_faults_at_once():
    with TestApiCluster("all-faults", faults_at_start(watch_close_after_events=3,
                                                      watch_close_abrupt=True)) as cluster:
        operator, calls_path = start(cluster, ["--workers=4"])
        cluster.faults(status_conflict_every=2, delay_ms=20,
                       errors=[{"prefix": "/apis/hotplug.dev", "code": 503, "count": 5,
                                "verbs": OPERATOR_VERBS}])
        drive(cluster, calls_path)


if __name__ == "__main__":
    sys.exit(run_checks([
        ("watch_closed_every_2_events", check_watch_closed_every_2_events),
        ("gone_on_reconnect_relists", check_gone_on_reconnect_relists),
        ("status_conflict_every_other_write", check_status_conflict_every_other_write),
        ("server_errors_for_a_while", check_server_errors_for_a_while),
        ("all_faults_at_once", check_all_faults_at_once),
    ], sys.argv))

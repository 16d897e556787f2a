#!/usr/bin/env python3
"""Faults a real kube-apiserver + etcd really produce, with hotplug-operator
(--hypervisor=fake, deploy/'s ServiceAccounts) working through them. In each, a series of
`kubectl patch` changes converges, the fake hypervisor's call log shows no vCPU step done
twice and no more calls than the changes need, and the operator is never refused (403).

- kube-apiserver restarted while a long pass is in flight and a patch is waiting: the watch
  breaks, the rebuilt watch cache no longer knows the operator's resourceVersion (410 "too
  old resource version"), the informer lists again and everything converges. (A server that
  has just started answers 403 until its RBAC caches sync, before /readyz is ok: the
  operator retries; those 403s are not counted against the grants, see Cluster.forbidden.)
- The same outage under --leader-elect: the leader cannot renew its Lease, gives up within
  the renew deadline and exits 1; the standby takes the Lease once the server is back and
  finishes the change the leader left half done.
- etcd compacted under a watch (watch cache off, so watches are etcd's own): while the
  history is there, renewals resume and never list; after the compaction the resume gets
  410 and the informer lists exactly once more.
- Short watches: with --watch-timeout=2s the real server ends every watch after 2 s; changes
  made across many renewals, including while a watch is being reopened, are all seen, none
  is done twice, and no renewal needs a LIST.

(kube-apiserver's --min-request-timeout sets the length only of watches that send no
timeoutSeconds; the operator, like client-go's reflector, always sends one -- measured on
v1.26.1: a watch asking 300 s outlived --min-request-timeout=5 by a minute -- so the short
watches here are asked for with the operator's --watch-timeout.)

The injected faults the real server cannot produce on cue (500 windows, 409 storms, scripted
410s) are operator_faults_test.py, on the project's test API server.

Run: python3 tests/integration/operator_real_faults_test.py [path/to/hotplug-operator-testing]
    [-k NAME]
"""

import itertools
import json
import sys
import threading
import time

from operator_lib import (CENTRAL_LEASE, SYSTEM_NAMESPACE, Cluster,
                          check_no_step_twice, expect, poll, read_call_log, require_assets,
                          run_checks)


def start(cluster, extra=(), name="operator", domains=None):
    domains = domains or cluster.write_domains([{"name": "web-01", "maximumVcpus": 16,
                                                 "currentVcpus": 1}])
    calls_path = cluster.path("calls.log")
    operator = cluster.operator(name, [f"--namespace={cluster.namespace}",
                                       f"--fake-domains-file={domains}",
                                       f"--fake-call-log={calls_path}"] + list(extra))
    return operator, calls_path


def first_converge(cluster, operator, vcpus=1):
    poll(lambda: operator.probe("/readyz") == 200, f"{operator.name}'s cache to sync", 30)
    cluster.apply_vm("web-01", vcpus)
    poll(lambda: cluster.converged("web-01", vcpus), f"web-01 to report {vcpus} vCPUs", 30)


def expect_exact_steps(calls_path, history, name="web-01"):
    """The call log did exactly the changes the sequence of targets needs, none twice."""
    needed = sum(abs(b - a) for a, b in zip(history, history[1:]))
    calls = read_call_log(calls_path)
    enabled = check_no_step_twice(calls, {name: history[0]})
    expect(len(enabled[name]) == history[-1],
           f"{name}: {len(enabled[name])} enabled, want {history[-1]}")
    expect(len(calls) == needed, f"{name}: {len(calls)} vCPU calls for {needed} needed changes "
                                 f"({' -> '.join(map(str, history))})")


class Background:
    """A function on a thread (a user's kubectl retried while the server is down); join()
    re-raises what it raised."""

    def __init__(self, function):
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self.thread.start()

    def _run(self, function):
        try:
            function()
        except BaseException as error:  # noqa: BLE001 - handed to join()
            self.error = error

    def join(self, timeout_s):
        self.thread.join(timeout_s)
        expect(not self.thread.is_alive(), f"the background kubectl still runs after "
                                           f"{timeout_s}s")
        if self.error:
            raise self.error


def check_apiserver_restarted_mid_pass():
    with Cluster("apiserver-restart") as cluster:
        operator, calls_path = start(cluster, ["--fake-vcpu-latency=200ms"])
        first_converge(cluster, operator)
        lists_before = operator.metric("hotplug_informer_lists_total")

        cluster.patch_vcpus("web-01", 10)  # 9 plugs x 200 ms: still at it when the server goes
        poll(lambda: len(read_call_log(calls_path)) >= 2, "two vCPUs plugged")
        outage = time.monotonic()
        cluster.plane.kill_apiserver()
        # A user changes the spec while the server is down: kubectl retries until it is back.
        waiting_patch = Background(lambda: cluster.patch_vcpus("web-01", 6, timeout_s=90))
        poll(lambda: operator.logged("watch broke; reconnecting") or
             operator.metric("hotplug_informer_reconnects_total") > 0,
             "the operator to see its watch break", 30)
        plugged_during_outage = len(read_call_log(calls_path))
        cluster.start_apiserver()
        print(f"  kube-apiserver down and back in {time.monotonic() - outage:.1f} s; "
              f"{plugged_during_outage} vCPU calls by then")
        waiting_patch.join(90)

        poll(lambda: cluster.converged("web-01", 6), "web-01 to converge on 6 after the restart",
             60)
        # The rebuilt watch cache starts at the server's current revision (which the new
        # server's own writes at start moved on): the resume got 410 and the informer listed.
        lists = operator.metric("hotplug_informer_lists_total") - lists_before
        expect(lists >= 1, f"{lists} LISTs after the restart; the resume should have met 410")
        # One relist, answered at the cache's version, ends it: no relist loop.
        expect(lists <= 2, f"{lists:.0f} LISTs after one restart: the informer keeps listing")
        expect(operator.logged("watch: resourceVersion too old; listing again") or
               operator.logged("watch resourceVersion too old; listing again"),
               "no 'resourceVersion too old' in the operator's log")
        for target in (3, 8):
            cluster.patch_vcpus("web-01", target)
            poll(lambda: cluster.converged("web-01", target), f"web-01 to converge on {target}",
                 30)
        # The pass in flight may have reached 10 before it saw the new spec, or stopped short.
        calls = read_call_log(calls_path)
        check_no_step_twice(calls, {"web-01": 1})
        # The pass in flight went on while the server was down and may or may not have
        # reached 10 before it saw the new spec: count from the peak it reached.
        enabled, peak = 1, 1
        for call in calls:
            enabled += 1 if call["enable"] else -1
            peak = max(peak, enabled)
        expect(6 <= peak <= 10, f"{peak} vCPUs at some point; 10 then 6 were asked")
        expect(len(calls) == (peak - 1) + (peak - 6) + 3 + 5,
               f"{len(calls)} vCPU calls for 1 -> {peak} -> 6 -> 3 -> 8")
        expect(operator.alive(), "the operator exited during the outage")
        expect(operator.stop() == 0, "the operator's exit code")


LEASE_ARGS = ["--leader-elect", f"--leader-elect-namespace={SYSTEM_NAMESPACE}",
              f"--leader-elect-id={CENTRAL_LEASE}", "--leader-elect-lease-duration=4s",
              "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms"]


def check_leader_that_cannot_renew_exits():
    with Cluster("apiserver-restart-leader", identity="central") as cluster:
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 32,
                                          "currentVcpus": 1}])
        extra = LEASE_ARGS + ["--fake-vcpu-latency=300ms"]
        a, calls_path = start(cluster, extra, "replica-a", domains)
        b, _ = start(cluster, extra, "replica-b", domains)
        leader = poll(lambda: [op for op in (a, b) if op.logged("leader election: became leader")],
                      "a leader", 20)[0]
        standby = b if leader is a else a
        first_converge(cluster, leader)
        poll(lambda: standby.probe("/readyz") == 200, "the standby's cache to sync")

        # 23 plugs x 300 ms: the pass outlasts the renew deadline by seconds.
        cluster.patch_vcpus("web-01", 24)
        poll(lambda: len(read_call_log(calls_path)) >= 2, "the leader to plug two vCPUs")
        down = time.monotonic()
        cluster.plane.kill_apiserver()
        # The leader keeps trying for the renew deadline (3 s), then gives up and exits 1.
        code = leader.wait_exit(20)
        gave_up = time.monotonic() - down
        expect(code == 1, f"the leader's exit code after it could not renew: {code}")
        expect(leader.logged("leader election: lost the lease"), "no 'lost the lease' line")
        expect(gave_up < 3 + 3 + 5, f"the leader took {gave_up:.1f} s to give up")
        done_by_leader = len(read_call_log(calls_path))
        expect(done_by_leader < 23, "the leader finished the pass: the outage came too late")
        # Its pass stopped after the step in flight: the hypervisor is left alone until the
        # standby leads (which needs the server back).
        expect(standby.alive() and not standby.logged("leader election: became leader"),
               "the standby led while the server was down")
        print(f"  leader exited {gave_up:.1f} s into the outage after {done_by_leader} of 23 "
              f"plugs")
        expect(len(read_call_log(calls_path)) == done_by_leader,
               "a vCPU call after the leader exited, with the server still down")
        cluster.start_apiserver()

        poll(lambda: standby.logged("leader election: became leader"),
             "the standby to take the Lease once the server is back", 30)
        poll(lambda: cluster.converged("web-01", 24), "web-01 to converge on 24 under the standby",
             60)
        expect(len(read_call_log(calls_path)) > done_by_leader,
               "the standby did not finish the change")
        expect_exact_steps(calls_path, [1, 24])
        lease = json.loads(cluster.kubectl("-n", SYSTEM_NAMESPACE, "get", "lease", CENTRAL_LEASE,
                                           "-o", "json").stdout)["spec"]
        expect(lease["holderIdentity"] ==
               standby.logged("leader election: became leader")[0]["identity"] and
               lease.get("leaseTransitions", 0) >= 1, f"the Lease after the handover: {lease}")
        expect(standby.stop() == 0, "the new leader's exit code")


def check_etcd_compacted_under_a_watch():
    # Watch cache off: each watch is etcd's own, so what etcd has compacted away is gone for
    # a resume. --watch-timeout makes the operator resume every 2 s.
    with Cluster("etcd-compaction", apiserver_args=["--watch-cache=false"]) as cluster:
        operator, calls_path = start(cluster, ["--watch-timeout=2s"])
        first_converge(cluster, operator, 2)
        cluster.kubectl("create", "namespace", f"{cluster.namespace}-noise")

        def renewals():
            return operator.metric("hotplug_informer_reconnects_total", reason="closed")

        def noise(count):
            """Writes elsewhere: etcd's revision moves on, the operator's watch sees none."""
            for _ in range(count):
                cluster.kubectl("-n", f"{cluster.namespace}-noise", "create", "configmap",
                                "--from-literal=a=b", f"noise-{time.monotonic_ns()}")

        # While the history is there, renewals resume from the operator's (older) version.
        start_renewals = renewals()
        noise(5)
        poll(lambda: renewals() >= start_renewals + 2, "two watch renewals", 20, 0.2)
        expect(operator.metric("hotplug_informer_relists_total") == 0,
               "a renewal listed again although etcd still had the history")
        noise(5)
        revision = cluster.plane.compact_etcd()
        print(f"  etcd compacted at revision {revision}")
        poll(lambda: operator.metric("hotplug_informer_relists_total") >= 1,
             "the informer to list again after the compaction", 20, 0.2)
        gone = operator.logged("watch: resourceVersion too old; listing again") + \
            operator.logged("watch resourceVersion too old; listing again")
        expect(gone, "no 'resourceVersion too old' in the operator's log")
        print(f"  the resume was answered: {gone[0].get('message') or gone[0].get('error')}")

        for target in (5, 3):
            cluster.patch_vcpus("web-01", target)
            poll(lambda: cluster.converged("web-01", target), f"web-01 to converge on {target}",
                 30)
        after = renewals()
        poll(lambda: renewals() >= after + 2, "two more renewals", 20, 0.2)
        expect(operator.metric("hotplug_informer_relists_total") == 1,
               f"{operator.metric('hotplug_informer_relists_total')} relists: one compaction "
               f"needs one")
        expect_exact_steps(calls_path, [1, 2, 5, 3])


def check_short_watches_lose_nothing():
    with Cluster("short-watches") as cluster:
        operator, calls_path = start(cluster, ["--watch-timeout=2s"])
        first_converge(cluster, operator)

        def renewals():
            return operator.metric("hotplug_informer_reconnects_total", reason="closed")
        began = renewals()
        history = [1]
        started = time.monotonic()
        targets = itertools.cycle((4, 2, 7, 3, 9, 5, 6))
        # Changes at moments that do not follow the watches' rhythm, some of them while a
        # watch is being reopened; each waits for convergence. At least 8 changes across at
        # least 4 renewals.
        while len(history) < 9 or renewals() - began < 4:
            expect(time.monotonic() - started < 60,
                   f"{renewals() - began:.0f} watch renewals in 60 s: the server did not end "
                   f"the 2 s watches")
            target = next(targets)
            cluster.patch_vcpus("web-01", target)
            poll(lambda: cluster.converged("web-01", target), f"web-01 to converge on {target}",
                 15, 0.02)
            history.append(target)
            time.sleep(0.5)  # spreads the changes over the 2 s watches; not a sync
        renewed = renewals() - began
        print(f"  {len(history) - 1} changes over {time.monotonic() - started:.1f} s and "
              f"{renewed:.0f} watch renewals")
        expect(operator.metric("hotplug_informer_relists_total") == 0,
               "a renewal needed a LIST: the informer lost its place")
        broken = operator.metric("hotplug_informer_reconnects_total") - renewals()
        expect(broken == 0, f"{broken} watches ended other than by the server's timeout")
        expect_exact_steps(calls_path, history)


if __name__ == "__main__":
    require_assets()
    sys.exit(run_checks([
        ("apiserver_restarted_mid_pass", check_apiserver_restarted_mid_pass),
        ("leader_that_cannot_renew_exits", check_leader_that_cannot_renew_exits),
        ("etcd_compacted_under_a_watch", check_etcd_compacted_under_a_watch),
        ("short_watches_lose_nothing", check_short_watches_lose_nothing),
    ], sys.argv))

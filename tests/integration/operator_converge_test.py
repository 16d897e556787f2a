#!/usr/bin/env python3
"""hotplug-operator (--hypervisor=fake) against a real kube-apiserver + etcd, driven by the
real kubectl, running with a token of deploy/'s ServiceAccount (and never refused: see
operator_lib.Cluster): an applied ElasticVM converges (status desired = current,
Ready=True), a `kubectl patch` of spec.cpu.vcpus converges, Events are recorded, /healthz
and /readyz answer, SIGTERM ends the process with exit code 0, and --node-name reconciles
only the objects meant for its node.

Run: python3 tests/integration/operator_converge_test.py [path/to/hotplug-operator-testing]
    [-k NAME]
"""

import datetime
import json
import signal
import statistics
import sys
import time

from operator_lib import (Cluster, check_no_step_twice, expect, poll, read_call_log, require_assets,
                          run_checks)


def check_apply_patch_and_shutdown():
    with Cluster("converge") as cluster:
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 16,
                                          "currentVcpus": 1}])
        calls_path = cluster.path("calls.log")
        operator = cluster.operator("operator", [
            f"--namespace={cluster.namespace}", f"--fake-domains-file={domains}",
            f"--fake-call-log={calls_path}", "--log-level=debug"])
        poll(lambda: operator.probe("/healthz") == 200, "/healthz to answer 200")
        poll(lambda: operator.probe("/readyz") == 200, "/readyz once the cache synced")

        cluster.apply_vm("web-01", 4)
        vm = poll(lambda: cluster.converged("web-01", 4), "web-01 to converge on 4 vCPUs")
        expect(vm["status"]["vcpus"]["enabled"] == "0-3", f"enabled: {vm['status']['vcpus']}")

        # kubectl patch -> converges; measure patch -> status converged, as a user sees it.
        latencies = []
        for target in (7, 3, 9, 2, 12):
            start = time.monotonic()
            cluster.patch_vcpus("web-01", target)
            poll(lambda: cluster.converged("web-01", target), f"web-01 to converge on {target}",
                 interval_s=0.01)
            latencies.append(time.monotonic() - start)
        print(f"  kubectl patch -> status converged (incl. kubectl's own ~0.1 s): "
              f"median {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} changes")

        report_event_to_step_latency(operator, f"{cluster.namespace}/web-01")

        calls = read_call_log(calls_path)
        final = check_no_step_twice(calls, {"web-01": 1})
        expect(len(final["web-01"]) == 12, f"fake domain has {len(final['web-01'])} enabled")
        # Minimal number of steps: 1->4->7->3->9->2->12 is 3+3+4+6+7+10 = 33 changes.
        expect(len(calls) == 33, f"{len(calls)} vCPU calls for 33 needed changes")

        # Events on the object, visible to kubectl; a repeated event is one Event whose
        # count grows (vCPU 3 was plugged three times in the sequence above).
        events = poll(lambda: json.loads(cluster.kubectl("get", "events", "-o", "json").stdout)
                      ["items"], "Events")
        seen = {}
        for event in events:
            expect(event["involvedObject"]["kind"] == "ElasticVM", f"event on {event}")
            identity = (event["reason"], event["message"])
            expect(identity not in seen, f"Event {identity} recorded twice, not aggregated")
            seen[identity] = event
        plugged_3 = [e for e in events if e["reason"] == "VcpuPlugged" and
                     e["message"].startswith("plugged vCPU 3 ")]
        expect(plugged_3, f"no 'plugged vCPU 3' Event among {list(seen)}")
        # (The message carries the call's duration, so the three may split across Events
        # with different messages; their counts add up.)
        poll(lambda: sum(e.get("count", 1) for e in
                         json.loads(cluster.kubectl("get", "events", "-o", "json").stdout)
                         ["items"] if e["reason"] == "VcpuPlugged" and
                         e["message"].startswith("plugged vCPU 3 ")) >= 3,
             "the 'plugged vCPU 3' Events to count 3", 10)

        # SIGTERM: a clean exit, code 0.
        operator.signal(signal.SIGTERM)
        code = operator.wait_exit(30)
        expect(code == 0, f"exit code after SIGTERM: {code}")
        expect(operator.logged("stopped"), "no 'stopped' log line")


def log_time(line):
    stamp = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.timestamp()


def report_event_to_step_latency(operator, key):
    """From the operator's own log: a watch event carrying a new generation -> the log line of
    the first vCPU step of the pass it caused (logged when the pass returns)."""
    seen_generation, waiting_since, latencies = 0, None, []
    for line in operator.lines():
        if line.get("msg") == "watch event" and line.get("object") == key:
            generation = int(line.get("generation", 0))
            if generation > seen_generation:
                seen_generation, waiting_since = generation, log_time(line)
        elif line.get("msg") == "step done" and waiting_since is not None:
            latencies.append(log_time(line) - waiting_since)
            waiting_since = None
    expect(latencies, "no watch event -> step pairs in the debug log")
    print(f"  watch event (new generation) -> pass done with its steps logged: "
          f"median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} changes")


def check_bad_flags_exit_2():
    import subprocess
    from operator_lib import operator_binary
    for args in (["--bogus"], ["--workers=0"], ["--resync-period=ten"], ["--hypervisor=xen"],
                 ["--watch-timeout=0"], ["--watch-timeout=500ms"]):
        result = subprocess.run([operator_binary()] + args, capture_output=True, text=True,
                                timeout=10)
        expect(result.returncode == 2, f"{args}: exit {result.returncode}")
        expect(result.stderr.strip(), f"{args}: no message")
    result = subprocess.run([operator_binary(), "--help"], capture_output=True, text=True,
                            timeout=10)
    expect(result.returncode == 0 and "--leader-elect" in result.stdout and
           "--watch-timeout" in result.stdout, "--help")


def check_node_scope():
    """--node-name: only objects whose spec.nodeName (or label) names this node are touched."""
    with Cluster("node-scope") as cluster:
        domains = cluster.write_domains([{"name": n, "maximumVcpus": 8, "currentVcpus": 1}
                                         for n in ("mine", "label-mine", "theirs", "nobody")])
        calls_path = cluster.path("calls.log")
        cluster.operator("agent", [f"--namespace={cluster.namespace}", "--node-name=host-a",
                                   f"--fake-domains-file={domains}",
                                   f"--fake-call-log={calls_path}"])
        cluster.apply_vm("mine", 3, extra_spec={"nodeName": "host-a"})
        cluster.apply_vm("theirs", 3, extra_spec={"nodeName": "host-b"})
        cluster.apply_vm("nobody", 3)
        cluster.kubectl("apply", "-f", "-", input_text="""
apiVersion: hotplug.dev/v1alpha1
kind: ElasticVM
metadata: {name: label-mine, labels: {hotplug.dev/node: host-a}}
spec: {cpu: {vcpus: 2}}
""")
        poll(lambda: cluster.converged("mine", 3), "mine to converge")
        poll(lambda: cluster.converged("label-mine", 2), "label-mine to converge")
        touched = {call["domain"] for call in read_call_log(calls_path)}
        expect(touched == {"mine", "label-mine"}, f"domains touched: {touched}")
        for other in ("theirs", "nobody"):
            expect(not (cluster.get_vm(other).get("status")), f"{other} got a status")


if __name__ == "__main__":
    require_assets()
    sys.exit(run_checks([
        ("apply_patch_and_shutdown", check_apply_patch_and_shutdown),
        ("bad_flags_exit_2", check_bad_flags_exit_2),
        ("node_scope", check_node_scope),
    ], sys.argv))

#!/usr/bin/env python3
"""SIGTERM in the middle of a long reconcile pass: the vCPU step in flight finishes, the
status that says what is really enabled is written, and the process exits 0 quickly. A
restarted operator (the fake hypervisor rebuilt from the call log, as a real hypervisor
would still be) resumes from what the hypervisor says and finishes the change without
repeating a step. On a real kube-apiserver + etcd, the operator with deploy/'s ServiceAccount.

Run: python3 tests/integration/operator_restart_test.py [path/to/hotplug-operator-testing]
"""

import signal
import sys
import time

from operator_lib import (Cluster, check_no_step_twice, expect, poll, read_call_log, require_assets,
                          run_checks)


def check_sigterm_mid_reconcile_then_resume():
    with Cluster("restart") as cluster:
        domains = cluster.write_domains([{"name": "big", "maximumVcpus": 16,
                                          "currentVcpus": 1}])
        calls_path = cluster.path("calls.log")
        args = [f"--namespace={cluster.namespace}", f"--fake-domains-file={domains}",
                f"--fake-call-log={calls_path}", "--fake-vcpu-latency=300ms"]
        first = cluster.operator("first", args)
        poll(lambda: first.probe("/readyz") == 200, "the first operator to sync")
        cluster.apply_vm("big", 12)  # 11 plugs x 300 ms
        poll(lambda: len(read_call_log(calls_path)) >= 2, "two vCPUs plugged")
        # The long pass published InProgress before its first step.
        vm = cluster.get_vm("big")
        ready = [c for c in vm["status"]["conditions"] if c["type"] == "Ready"][0]
        expect(ready["reason"] == "InProgress", f"Ready during the pass: {ready}")

        signalled = time.monotonic()
        first.signal(signal.SIGTERM)
        code = first.wait_exit(20)
        took = time.monotonic() - signalled
        print(f"  SIGTERM mid-pass -> exit {code} in {took * 1000:.0f} ms")
        expect(code == 0, f"exit code {code}")
        expect(took < 5, f"took {took:.1f} s to stop")
        done = len(read_call_log(calls_path))
        expect(done < 11, f"the pass was not interrupted ({done} steps)")
        # The status written on the way out tells the truth: 1 + done enabled, not Ready.
        vm = cluster.get_vm("big")
        expect(vm["status"]["vcpus"]["current"] == 1 + done,
               f"status says {vm['status']['vcpus']['current']}, hypervisor has {1 + done}")
        ready = [c for c in vm["status"]["conditions"] if c["type"] == "Ready"][0]
        expect(ready["status"] != "True", f"Ready after an interrupted pass: {ready}")

        second = cluster.operator("second", args)
        replayed = poll(lambda: second.logged("fake hypervisor: replayed the call log"),
                        "the second operator to replay the call log")
        # Every line is replayed: the vCPU steps and the owner's claim on the domain.
        with open(calls_path, encoding="utf-8") as handle:
            logged = sum(1 for line in handle if line.strip())
        expect(logged > done, f"no claim was logged beside the {done} steps")
        expect(replayed[0]["changes"] == str(logged),
               f"replayed {replayed[0]['changes']} of {logged} logged lines")
        poll(lambda: cluster.converged("big", 12), "big to converge after the restart", 30)
        calls = read_call_log(calls_path)
        check_no_step_twice(calls, {"big": 1})
        expect(len(calls) == 11, f"{len(calls)} plugs for 11 needed")
        expect(second.stop() == 0, "second operator's exit code")


if __name__ == "__main__":
    require_assets()
    sys.exit(run_checks([
        ("sigterm_mid_reconcile_then_resume", check_sigterm_mid_reconcile_then_resume),
    ], sys.argv))

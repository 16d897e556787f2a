"""Checks shared by the reliability tests (tests/reliability/): what "converged and honest"
means after a fault. Builds on tests/integration/operator_lib.py (the test API server, the
operator process, kubectl, the fake's call log). Standard library only.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import operator_lib  # noqa: E402,F401  (re-exported for the tests)
from operator_lib import (CheckFailed, check_no_step_twice, expect,  # noqa: E402,F401
                          poll, read_call_log, run_checks)
# These tests inject faults (500 windows, cut watches, 410s, 409s) and read the request log:
# the test API server's cluster, not operator_lib.Cluster (the real kube-apiserver).
from operator_lib import TestApiCluster as Cluster  # noqa: E402,F401


def parse_cpuset(text):
    """'0-2,5' -> {0, 1, 2, 5}; '' or None -> set()."""
    ids = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            ids.update(range(int(low), int(high) + 1))
        else:
            ids.add(int(part))
    return ids


def events_for(cluster, name):
    """Reasons of the core/v1 Events about ElasticVM `name`, in creation order."""
    result = cluster.kubectl("get", "events", "-o", "json", check=False)
    if result.returncode != 0:
        return []
    items = json.loads(result.stdout).get("items", [])
    items = [e for e in items if (e.get("involvedObject") or {}).get("name") == name]
    return [e.get("reason") for e in items]


def wait_events(cluster, name, reasons, timeout_s=20.0):
    """Waits until every reason in `reasons` has an Event about `name`; returns all reasons."""
    def have():
        seen = events_for(cluster, name)
        return seen if all(r in seen for r in reasons) else None
    try:
        return poll(have, f"Events {sorted(reasons)} about {name}", timeout_s, 0.2)
    except CheckFailed as error:
        raise CheckFailed(f"{error}; seen: {events_for(cluster, name)}") from None


def check_honest(cluster, name, domain, calls_path, initial_enabled, want_vcpus):
    """After a fault: the status is converged on `want_vcpus` and true to the hypervisor (the
    fake's call log replayed), vCPU 0 was never touched, no step ran twice. Returns the
    number of vCPU calls in the log for `domain`."""
    vm = poll(lambda: cluster.converged(name, want_vcpus), f"{name} to converge on "
              f"{want_vcpus} vCPUs", 30)
    calls = read_call_log(calls_path)
    final = check_no_step_twice(calls, {domain: initial_enabled})
    for call in calls:
        expect(not (call.get("op") == "vcpu" and call.get("id") == 0),
               f"vCPU 0 was touched: {call}")
    truth = final.get(domain, set(range(initial_enabled)))
    status = vm["status"]["vcpus"]
    expect(status.get("current") == len(truth),
           f"status.vcpus.current={status.get('current')} but the hypervisor has {len(truth)}")
    expect(parse_cpuset(status.get("enabled")) == truth,
           f"status.vcpus.enabled={status.get('enabled')!r} but the hypervisor has "
           f"{sorted(truth)}")
    return len([c for c in calls if c.get("op") == "vcpu" and c.get("domain") == domain])


def stop_cleanly(operator):
    """SIGTERM by PID: the process must exit 0 (a sanitizer build also fails on a leak)."""
    code = operator.stop()
    expect(code == 0, f"{operator.name} exited {code} after SIGTERM:\n{operator.tail(15)}")


def injected(cluster, since=0, code=None):
    """Requests in the API server's log that got an injected fault (optionally of `code`)."""
    return [r for r in cluster.requests(since)
            if r.get("injected") and (code is None or r.get("injected") == code)]

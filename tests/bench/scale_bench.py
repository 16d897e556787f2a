"""Scale-out on a REAL kube-apiserver + etcd (tests/support/control_plane.py), for
run_bench.py: its benchmarks `scale` and `big_cache`.

scale: N simulated nodes x M ElasticVMs each (100 x 100; smoke 4 x 10). Objects are created
as `kubectl apply` leaves them (last-applied annotation, managedFields) naming their node in
spec.nodeName only; the central node assigner (--assign-nodes) labels them; then one
hotplug-operator agent per node name (--node-name, fake hypervisor, its own call log) is
started, in batches of 10 so 100 processes on 2 cores do not all LIST at once. Per agent:
objects and bytes the API server sent on LIST and WATCH (hotplug_informer_received_*), its
resident memory, and, one agent at a time, the time from a PATCH of one of its objects to
the first SetVcpu in its call log. For the API server (its own /metrics): registered
watchers and watch events sent for ElasticVMs while the changes ran. Beside it the same for
the central's cluster-wide watch (what every agent received before label selection), and,
with --baseline-binary (a hotplug-operator built from before label selection), the same
100 agents watching cluster-wide.

big_cache: one operator (no --node-name) over 10,000 and 100,000 ElasticVMs as the real
server serves them, statuses written by a first run; then restarts: spawn -> the cache
holds every object, each was reconciled once and the queue is empty; resident memory then,
above the same process with nothing to cache.

etcd runs with --unsafe-no-fsync in both (creating 100,000 objects is the setup, not what
is measured; the LISTs measured come from the API server's watch cache).
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from check_lib import free_port, poll  # noqa: E402
from control_plane import ControlPlane, assets_dir  # noqa: E402

DEPLOY = os.path.join(ROOT, "deploy")
SYSTEM = "hotplug-system"
AGENT_LEASES = "hotplug-system-agents"  # where deploy/ keeps the agents' Leases
NS = "scale"
BATCH = 10


# ---- small helpers

def parse_metrics(text):
    """{name: [(labels dict, value)]} of a Prometheus text exposition."""
    out = {}
    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        head, _, value = raw.rpartition(" ")
        name, labels = head, {}
        if "{" in head:
            name, _, rest = head.partition("{")
            for part in rest.rstrip("}").split('",'):
                if "=" in part:
                    key, _, quoted = part.partition("=")
                    labels[key.strip()] = quoted.strip().strip('"')
        try:
            out.setdefault(name, []).append((labels, float(value)))
        except ValueError:
            pass
    return out


def metric(parsed, name, **labels):
    return sum(v for l, v in parsed.get(name, []) if all(l.get(k) == x for k, x in labels.items()))


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return parse_metrics(answer.read().decode())
    except OSError:
        return None


def resident_bytes(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Process:
    """A hotplug-operator on 127.0.0.1 with its metrics port; stopped by its PID."""

    def __init__(self, binary, args, log_path):
        self.port = free_port()
        self.command = [binary, f"--metrics-bind-address=127.0.0.1:{self.port}",
                        "--health-probe-bind-address=0"] + args
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.started = time.monotonic()
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)

    def metrics(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.command} exited {self.process.returncode}; "
                               f"log {self.log_path}")
        return scrape(self.port)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def applied_object(name, spec, labels=None):
    """An ElasticVM as `kubectl apply` sends it: the last-applied annotation repeats it."""
    body = {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}
    if labels:
        body["metadata"]["labels"] = labels
    body["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration":
            json.dumps(body, separators=(",", ":")) + "\n"}
    return body


def create_objects(cp, names_and_specs, threads=8, labels=None):
    """POSTs the objects with `threads` kept-alive connections (a TLS handshake per object
    would be most of the cost)."""
    import http.client
    path = (f"/apis/hotplug.dev/v1alpha1/namespaces/{NS}/elasticvms"
            "?fieldManager=kubectl-client-side-apply")
    headers = {"Authorization": "Bearer hotplug-admin-token", "Content-Type": "application/json"}
    errors = []

    def worker(offset):
        connection = None
        for i in range(offset, len(names_and_specs), threads):
            name, spec = names_and_specs[i]
            body = json.dumps(applied_object(name, spec, labels))
            for _ in range(5):
                try:
                    if connection is None:
                        connection = http.client.HTTPSConnection(
                            "127.0.0.1", cp.port, timeout=60, context=cp._context())
                    connection.request("POST", path, body, headers)
                    answer = connection.getresponse()
                    text = answer.read()
                    status = answer.status
                except (OSError, http.client.HTTPException) as error:
                    connection, status, text = None, 0, str(error)
                if status in (201, 409):
                    break
            else:
                errors.append(f"{name}: {status} {str(text)[:200]}")
        if connection is not None:
            connection.close()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")


def remaining(cp, selector):
    """How many ElasticVMs match `selector` (a quorum LIST of one, remainingItemCount)."""
    status, body = cp.get(f"/apis/hotplug.dev/v1alpha1/namespaces/{NS}/elasticvms?limit=1&"
                          f"labelSelector={urllib.request.quote(selector)}", timeout_s=60)
    if status != 200:
        raise RuntimeError(f"LIST answered {status}: {str(body)[:200]}")
    return len(body["items"]) + body["metadata"].get("remainingItemCount", 0)


def list_bytes(cp, selector=None):
    """Bytes and objects of one LIST rv=0 (the watch cache), as an informer gets it."""
    query = "resourceVersion=0" + (f"&labelSelector={urllib.request.quote(selector)}"
                                   if selector else "")
    request = urllib.request.Request(
        f"{cp.url}/apis/hotplug.dev/v1alpha1/namespaces/{NS}/elasticvms?{query}",
        headers={"Authorization": "Bearer hotplug-admin-token"})
    with urllib.request.urlopen(request, timeout=300, context=cp._context()) as answer:
        raw = answer.read()
    return len(raw), len(json.loads(raw)["items"])


def apiserver_figures(cp):
    """What kube-apiserver's own /metrics says about ElasticVM watches."""
    status, text = cp.get("/metrics", timeout_s=60)
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    parsed = parse_metrics(text)
    evm = {"group": "hotplug.dev", "kind": "ElasticVM"}
    return {
        # v1.26 has no apiserver_registered_watchers: the open WATCH requests are the watchers.
        "watchers": metric(parsed, "apiserver_longrunning_requests", resource="elasticvms",
                           verb="WATCH"),
        # Events sent, one per watcher that got it, and their bytes ...
        "events": metric(parsed, "apiserver_watch_events_total", **evm),
        "event_bytes": metric(parsed, "apiserver_watch_events_sizes_sum", **evm),
        # ... and changes the watch cache dispatched (once each, whoever watches).
        "dispatched": metric(parsed, "apiserver_watch_cache_events_dispatched_total",
                             resource="elasticvms.hotplug.dev"),
    }


def tokens(cp, workdir):
    for name in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml",
                 "central/serviceaccount.yaml", "central/rbac.yaml"):
        cp.kubectl("apply", "-f", os.path.join(DEPLOY, name))
    out = {}
    for identity, account in (("agent", "hotplug-operator"),
                              ("central", "hotplug-operator-central")):
        token = cp.service_account_token(SYSTEM, account, duration="24h")
        out[identity] = cp.write_kubeconfig(os.path.join(workdir, f"{identity}.kubeconfig"),
                                            token=token, namespace=NS)
    return out


# ---- scale

def agent_ready(agent, count):
    parsed = agent.metrics()
    return parsed and (metric(parsed, "hotplug_informer_cache_objects") >= count and
                       metric(parsed, "hotplug_status_writes_total") >= count and
                       metric(parsed, "workqueue_depth") == 0)


def start_agents(binary, kubeconfig, workdir, nodes, per_node, extra_args, logs, label):
    """Agents node-0 .. node-<nodes-1>, BATCH at a time, each waited for until it holds its
    objects and has written their status (or, for a baseline binary, has listed)."""
    agents = []
    for first in range(0, nodes, BATCH):
        batch = []
        for i in range(first, min(nodes, first + BATCH)):
            calls = os.path.join(workdir, f"{label}-node-{i}.calls")
            agent = Process(binary, [
                "--hypervisor=fake", f"--fake-domains={per_node}", f"--fake-call-log={calls}",
                f"--kubeconfig={kubeconfig}", f"--node-name=node-{i}", "--workers=1",
                f"--namespace={NS}"] + extra_args, logs(f"{label}-agent-{i}"))
            agent.node, agent.calls = f"node-{i}", calls
            batch.append(agent)
        for agent in batch:
            poll(lambda: (metric(agent.metrics() or {}, "hotplug_informer_cache_objects")
                          >= per_node and metric(agent.metrics() or {}, "workqueue_depth") == 0),
                 f"{label} agent {agent.node} to hold its objects", 300, 0.1)
        agents += batch
    return agents


def change_latencies(cp, agents, per_node):
    """One agent at a time: PATCH one of its objects to 2 vCPUs, time the first SetVcpu
    line in its call log (appended when the call returns; the fake's SetVcpu takes 0 s),
    from when the PATCH was sent and from when the server answered it."""
    latencies, from_answer = [], []
    for index, agent in enumerate(agents):
        name = f"{agent.node}-vm-{index % per_node}"
        size = os.path.getsize(agent.calls) if os.path.exists(agent.calls) else 0
        sent = time.monotonic()
        status, body = cp.request(
            "PATCH", f"/apis/hotplug.dev/v1alpha1/namespaces/{NS}/elasticvms/{name}",
            {"spec": {"cpu": {"vcpus": 2}}}, content_type="application/merge-patch+json")
        answered = time.monotonic()
        if status != 200:
            raise RuntimeError(f"PATCH {name}: {status} {str(body)[:200]}")
        deadline = sent + 30
        while time.monotonic() < deadline:
            if os.path.exists(agent.calls) and os.path.getsize(agent.calls) > size:
                now = time.monotonic()
                latencies.append(now - sent)
                from_answer.append(max(0.0, now - answered))
                break
            time.sleep(0.0005)
        else:
            raise RuntimeError(f"{agent.node} made no call for {name} within 30 s")
    return latencies, from_answer


def agent_figures(agent):
    parsed = agent.metrics()
    return {"node": getattr(agent, "node", None),
            "list_objects": metric(parsed, "hotplug_informer_received_objects_total",
                                   verb="list"),
            "watch_objects": metric(parsed, "hotplug_informer_received_objects_total",
                                    verb="watch"),
            "list_bytes": metric(parsed, "hotplug_informer_received_bytes_total", verb="list"),
            "watch_bytes": metric(parsed, "hotplug_informer_received_bytes_total",
                                  verb="watch"),
            "cached": metric(parsed, "hotplug_informer_cache_objects"),
            "rss_bytes": resident_bytes(agent.process.pid),
            "cpu_seconds": cpu_seconds(agent.process.pid)}


def bench_scale(ctx):
    skipped = require_real_server()
    if skipped:
        return skipped
    nodes, per_node = (4, 10) if ctx.smoke else (100, 100)
    binary = ctx.binary("hotplug-operator-testing")
    baseline = ctx.baseline_binary
    results = []
    code = 0
    with tempfile.TemporaryDirectory() as workdir, \
            ControlPlane(workdir, etcd_no_fsync=True) as cp:
        cp.install_crd()
        cp.kubectl("create", "namespace", NS)
        kubeconfigs = tokens(cp, workdir)
        lease_args = [f"--agent-lease-namespace={AGENT_LEASES}"]
        central = Process(binary, [f"--kubeconfig={kubeconfigs['central']}", "--assign-nodes",
                                   f"--namespace={NS}", "--workers=2", "--leader-elect",
                                   f"--leader-elect-namespace={SYSTEM}"] + lease_args,
                          ctx.log("scale-central"))
        agents = []
        try:
            created = time.monotonic()
            create_objects(cp, [(f"node-{n}-vm-{v}",
                                 {"nodeName": f"node-{n}", "domain": f"vm-{v}",
                                  "cpu": {"vcpus": 1}})
                                for n in range(nodes) for v in range(per_node)])
            create_seconds = time.monotonic() - created
            poll(lambda: remaining(cp, "!hotplug.dev/node") == 0,
                 "the central to label every object", 600, 0.5)
            labelled_seconds = time.monotonic() - created
            print(f"scale: {nodes * per_node} ElasticVMs created in {create_seconds:.1f} s, "
                  f"all labelled by the central {labelled_seconds:.1f} s after the first",
                  flush=True)
            started = time.monotonic()
            agents = start_agents(binary, kubeconfigs["agent"], workdir, nodes, per_node,
                                  lease_args, ctx.log, "scoped")
            poll(lambda: all(agent_ready(a, per_node) for a in agents),
                 "every agent to write its objects' status", 600, 0.5)
            print(f"scale: {nodes} agents synced and every status written "
                  f"{time.monotonic() - started:.1f} s after the first agent started",
                  flush=True)
            before = apiserver_figures(cp)
            latencies, from_answer = change_latencies(cp, agents, per_node)
            # The last status writes' events reach the watchers.
            time.sleep(1.0)
            after = apiserver_figures(cp)
            per_agent = [agent_figures(a) for a in agents]
            central_figures = agent_figures(central)
            central_figures["node"] = "central (cluster-wide)"
            whole_list = list_bytes(cp)
            one_list = list_bytes(cp, "hotplug.dev/node=node-0")
            results.append({
                "bench": "scale", "mode": "label-selected", "nodes": nodes,
                "per_node": per_node, "objects": nodes * per_node,
                "create_seconds": create_seconds, "labelled_seconds": labelled_seconds,
                "agents": per_agent, "central": central_figures,
                "latency_ms": [1000 * x for x in latencies],
                "answered_latency_ms": [1000 * x for x in from_answer],
                "apiserver_before": before, "apiserver_after": after,
                "changes": len(latencies),
                "list_rv0_all": whole_list, "list_rv0_one_node": one_list})
            summarize(results[-1])
            # What the benchmark is for (and what its smoke run in ctest checks): each agent
            # was sent its own node's objects, no other (on each LIST, if it listed again).
            wrong = [a for a in per_agent
                     if not a["list_objects"] or a["list_objects"] % per_node or
                     a["cached"] != per_node]
            if wrong:
                print(f"FAIL: agents listed or cached other than their {per_node} objects: "
                      f"{wrong[:3]}", flush=True)
                code = 1
        finally:
            for agent in agents:
                agent.stop()
        if baseline and not ctx.smoke:
            results.append(run_baseline(ctx, cp, baseline, kubeconfigs, workdir, nodes,
                                        per_node))
        central.stop()
    return {"code": code, "results": results,
            "command": ["scripts/bench", "--only", "scale"] +
                       (["--baseline-binary", "B"] if baseline else [])}


def run_baseline(ctx, cp, baseline, kubeconfigs, workdir, nodes, per_node):
    """The same agents as before label selection: every one LISTs and WATCHes every
    ElasticVM and keeps those whose spec.nodeName is its node."""
    agents = []
    try:
        started = time.monotonic()
        agents = start_agents(baseline, kubeconfigs["agent"], workdir, nodes, per_node, [],
                              ctx.log, "baseline")
        print(f"scale baseline: {nodes} cluster-wide agents synced "
              f"{time.monotonic() - started:.1f} s after the first started", flush=True)
        before = apiserver_figures(cp)
        latencies, from_answer = change_latencies(cp, agents, per_node)
        time.sleep(1.0)
        after = apiserver_figures(cp)
        rss = [resident_bytes(a.process.pid) for a in agents]
        cpu = [cpu_seconds(a.process.pid) for a in agents]
        whole_list = list_bytes(cp)
        result = {"bench": "scale", "mode": "cluster-wide (baseline binary)", "nodes": nodes,
                  "per_node": per_node, "objects": nodes * per_node,
                  "agents": [{"node": a.node, "rss_bytes": r, "cpu_seconds": c,
                              "list_objects": whole_list[1], "list_bytes": whole_list[0]}
                             for a, r, c in zip(agents, rss, cpu)],
                  "latency_ms": [1000 * x for x in latencies],
                  "answered_latency_ms": [1000 * x for x in from_answer],
                  "apiserver_before": before, "apiserver_after": after,
                  "changes": len(latencies), "list_rv0_all": whole_list}
        summarize(result)
        return result
    finally:
        for agent in agents:
            agent.stop()


def summarize(result):
    agents = result["agents"]
    delta_events = result["apiserver_after"]["events"] - result["apiserver_before"]["events"]
    print(f"scale {result['mode']}: per agent RSS mean "
          f"{statistics.mean(a['rss_bytes'] for a in agents) / 2**20:.1f} MiB; LIST objects "
          f"mean {statistics.mean(a.get('list_objects', 0) for a in agents):.0f}; change -> "
          f"SetVcpu p50 {percentile(result['latency_ms'], 0.5):.1f} ms p99 "
          f"{percentile(result['latency_ms'], 0.99):.1f} ms; watchers "
          f"{result['apiserver_after']['watchers']:.0f}; watch events sent during "
          f"{result['changes']} changes: {delta_events:.0f}", flush=True)


# ---- big cache: restart and memory at 10k and 100k

def drained(count):
    # Listed first: with count 0 (the empty baseline) the other conditions hold from the
    # first scrape, before the informer has even connected, and the baseline would miss what
    # a process that has listed holds whatever it caches.
    def check(parsed):
        return (parsed and metric(parsed, "hotplug_informer_lists_total") >= 1 and
                metric(parsed, "hotplug_informer_cache_objects") >= count and
                metric(parsed, "hotplug_reconcile_total") >= count and
                metric(parsed, "workqueue_depth") == 0)
    return check


def run_until(binary, args, log_path, done, timeout_s=900):
    """Spawns the operator, polls /metrics until done(parsed); returns (seconds, RSS, CPU)
    at that moment, or Nones."""
    process = Process(binary, args, log_path)
    try:
        while time.monotonic() - process.started < timeout_s:
            parsed = process.metrics()
            if parsed is not None and done(parsed):
                seconds = time.monotonic() - process.started
                return seconds, resident_bytes(process.process.pid), \
                    cpu_seconds(process.process.pid)
            time.sleep(0.02)
        return None, None, None
    finally:
        process.stop()


def bench_big_cache(ctx):
    skipped = require_real_server()
    if skipped:
        return skipped
    sizes = [500] if ctx.smoke else [1000, 10000, 100000]
    # HOTPLUG_BENCH_BIG_CACHE_SIZES=1000,10000: fewer sizes (the 100k setup alone, creating
    # the objects and writing their statuses, takes half an hour on a loaded 2-core machine).
    if os.environ.get("HOTPLUG_BENCH_BIG_CACHE_SIZES") and not ctx.smoke:
        sizes = [int(n) for n in os.environ["HOTPLUG_BENCH_BIG_CACHE_SIZES"].split(",")]
    runs = 1 if ctx.smoke else 3
    binary = ctx.binary("hotplug-operator-testing")
    results = []
    with tempfile.TemporaryDirectory() as workdir, \
            ControlPlane(workdir, etcd_no_fsync=True) as cp:
        cp.install_crd()
        cp.kubectl("create", "namespace", NS)
        kubeconfig = cp.write_kubeconfig(os.path.join(workdir, "admin.kubeconfig"),
                                         namespace=NS)

        cp.kubectl("create", "namespace", "empty")

        # One fake hypervisor across the starts (its call log): a restart finds the domains
        # claimed by the first start, as on a real host, instead of claiming each again.
        calls = os.path.join(workdir, "calls.log")

        def args(count, namespace=NS):
            return ["--hypervisor=fake", f"--fake-domains={count}", f"--kubeconfig={kubeconfig}",
                    f"--namespace={namespace}", "--workers=2", f"--fake-call-log={calls}"]
        created = 0
        for size in sizes:
            start = time.monotonic()
            prior = created
            # vCPUs and memory both managed (the fake domains have 1 vCPU and 1Gi): a status
            # with its three conditions, as a converged object has.
            create_objects(cp, [(f"vm-{i}", {"domain": f"vm-{i}", "nodeName": "node-0",
                                             "cpu": {"vcpus": 1, "guestOnline": "auto"},
                                             "memory": {"size": "1Gi", "method": "auto"},
                                             "persist": True})
                                for i in range(created, size)],
                           labels={"app": "web", "hotplug.dev/node": "node-0"})
            created = size
            print(f"big_cache: {size} ElasticVMs ({time.monotonic() - start:.0f} s to create)",
                  flush=True)

            def written(parsed):
                return (metric(parsed, "hotplug_status_writes_total") >= size - prior and
                        metric(parsed, "workqueue_depth") == 0)
            first, _, _ = run_until(binary, args(size) + ["--workers=8"], ctx.log("big-cache"),
                                    written, 3600)
            print(f"big_cache: first start wrote {size - prior} statuses in "
                  f"{first if first is not None else float('nan'):.0f} s", flush=True)
            object_bytes = list_bytes(cp)[0] / size
            # The same process (and fake hypervisor, whose `size` domains are the bench's, not
            # the operator's) over a namespace with no ElasticVM: what the objects add to.
            _, empty_rss, _ = run_until(binary, args(size, "empty"), ctx.log("big-cache"),
                                        drained(0))
            for attempt in range(runs):
                list_started = time.monotonic()
                list_bytes(cp)
                server_list = time.monotonic() - list_started
                seconds, rss, cpu = run_until(binary, args(size), ctx.log("big-cache"),
                                              drained(size))
                per_object = (rss - empty_rss) / size if rss else None
                print(f"big_cache restart {attempt + 1}: {size} objects synced and drained "
                      f"{seconds if seconds is not None else float('nan'):.2f} s after spawn "
                      f"(the server alone answers the LIST rv=0 in {server_list:.2f} s); RSS "
                      f"{(rss or 0) / 2**20:.1f} MiB, {per_object or 0:.0f} B/object above "
                      f"empty; CPU {cpu or 0:.2f} s", flush=True)
                results.append({"bench": "big_cache", "objects": size, "attempt": attempt + 1,
                                "seconds": seconds, "rss_bytes": rss, "cpu_seconds": cpu,
                                "empty_rss_bytes": empty_rss, "bytes_per_object": per_object,
                                "server_list_seconds": server_list,
                                "object_json_bytes": object_bytes,
                                "first_start_seconds": first})
    ok = all(r["seconds"] is not None for r in results)
    return {"code": 0 if ok else 1, "results": results,
            "command": ["scripts/bench", "--only", "big_cache"]}


def require_real_server():
    if assets_dir():
        return None
    why = ("no kube-apiserver: set KUBEBUILDER_ASSETS (.ci/run and scripts/test use "
           "../shared/kubernetes/bin)")
    if os.environ.get("CI") == "true":
        print(f"FAIL (CI=true): {why}", flush=True)
        return {"code": 1, "results": [], "command": ["scripts/bench"]}
    return {"skipped": why}


# ---- BENCHMARKS.md

def fmt(value, digits=1):
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else "—"


def section_scale(out, entry):
    out.append("kube-apiserver v1.26.1 + etcd (no fsync) on 127.0.0.1; one hotplug-operator "
               "process per simulated node (fake hypervisor, 1 worker), started 10 at a time; "
               "the central node assigner labels the objects, which name their node in "
               "spec.nodeName only.")
    out.append("")
    rows = []
    for r in entry["results"]:
        agents = r["agents"]
        delta = r["apiserver_after"]["events"] - r["apiserver_before"]["events"]
        delta_bytes = (r["apiserver_after"]["event_bytes"] -
                       r["apiserver_before"]["event_bytes"])
        rows.append((r, agents, delta, delta_bytes))
    out.append("| watch | objects | per agent: LIST objects | LIST bytes | WATCH objects | "
               "WATCH bytes | RSS MiB (mean / max) | PATCH sent → first SetVcpu p50 / p99 / "
               "max ms | PATCH answered → first SetVcpu p50 / p99 ms | API server: ElasticVM "
               "watchers | watch events sent while the changes ran, per change dispatched |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r, agents, delta, _ in rows:
        dispatched = r["apiserver_after"]["dispatched"] - r["apiserver_before"]["dispatched"]
        answered = r.get("answered_latency_ms", [])

        def mean(key):
            values = [a[key] for a in agents if key in a]
            return statistics.mean(values) if values else None
        lat = r["latency_ms"]
        out.append(
            f"| {r['mode']} | {r['objects']:,} ({r['nodes']} × {r['per_node']}) | "
            f"{fmt(mean('list_objects'), 0)} | {fmt(mean('list_bytes'), 0)} | "
            f"{fmt(mean('watch_objects'), 0)} | {fmt(mean('watch_bytes'), 0)} | "
            f"{fmt(mean('rss_bytes') / 2**20)} / "
            f"{fmt(max(a['rss_bytes'] for a in agents) / 2**20)} | "
            f"{fmt(percentile(lat, 0.5), 2)} / {fmt(percentile(lat, 0.99), 2)} / "
            f"{fmt(max(lat), 2)} | {fmt(percentile(answered, 0.5), 2)} / "
            f"{fmt(percentile(answered, 0.99), 2)} | {fmt(r['apiserver_after']['watchers'], 0)} | "
            f"{fmt(delta, 0)} ({fmt(delta / max(1, dispatched), 1)}) |")
        if "central" in r:
            c = r["central"]
            out.append(
                f"| the central's cluster-wide watch (one process) | {r['objects']:,} | "
                f"{fmt(c['list_objects'], 0)} | {fmt(c['list_bytes'], 0)} | "
                f"{fmt(c['watch_objects'], 0)} | {fmt(c['watch_bytes'], 0)} | "
                f"{fmt(c['rss_bytes'] / 2**20)} | | | | |")
    out.append("")
    for r, agents, delta, delta_bytes in rows:
        if r["mode"] != "label-selected":
            continue
        share = statistics.mean(a["list_objects"] for a in agents) / r["objects"]
        c = r.get("central", {})
        out.append(f"Each agent received {100 * share:.2f} % of the objects on its LIST "
                   f"(all {r['objects']:,} go to the central's cluster-wide watch, which every "
                   f"agent had before); its WATCH brought "
                   f"{fmt(statistics.mean(a['watch_objects'] for a in agents), 0)} objects "
                   f"against the central's {fmt(c.get('watch_objects'), 0)}. A LIST rv=0 of "
                   f"everything is {r['list_rv0_all'][0]:,} bytes, of one node's "
                   f"{r['list_rv0_one_node'][0]:,}. Created in {fmt(r['create_seconds'])} s, "
                   f"every object labelled {fmt(r['labelled_seconds'])} s after the first "
                   f"create. During the {r['changes']} changes the API server sent "
                   f"{fmt(delta, 0)} ElasticVM watch events ({fmt(delta_bytes, 0)} bytes).")
        out.append("")
    baseline = [r for r, *_ in rows if r["mode"] != "label-selected"]
    scoped = [r for r, *_ in rows if r["mode"] == "label-selected"]
    if baseline and scoped:
        b, s = baseline[0], scoped[0]
        b_events = b["apiserver_after"]["events"] - b["apiserver_before"]["events"]
        s_events = s["apiserver_after"]["events"] - s["apiserver_before"]["events"]
        out.append(f"Ratio cluster-wide / label-selected: LIST objects per agent "
                   f"{b['agents'][0]['list_objects'] / max(1, s['agents'][0]['list_objects']):.0f}"
                   f"×; watch events the server sent for the same changes "
                   f"{b_events / max(1, s_events):.0f}×; RSS per agent "
                   f"{statistics.mean(a['rss_bytes'] for a in b['agents']) / statistics.mean(a['rss_bytes'] for a in s['agents']):.2f}×. "
                   "The baseline is a hotplug-operator built from before label selection "
                   "(`--baseline-binary`), on the same server and objects.")
        out.append("")


def section_big_cache(out, entry, verdict):
    out.append("One operator (no --node-name, 2 workers, fake hypervisor) over ElasticVMs "
               "created as `kubectl apply` leaves them (last-applied annotation, managedFields) "
               "whose statuses a first run wrote; kube-apiserver v1.26.1 + etcd (no fsync).")
    out.append("")
    out.append("| objects | JSON per object as served (B) | attempt | spawn → synced and "
               "drained (s) | the server alone: LIST rv=0 (s) | operator CPU (s) | RSS (MiB) | "
               "RSS above empty, per object (B) |")
    out.append("|---|---|---|---|---|---|---|---|")
    worst, per_object = {}, {}
    for r in entry["results"]:
        worst[r["objects"]] = max(worst.get(r["objects"], 0), r["seconds"] or float("inf"))
        per_object[r["objects"]] = max(per_object.get(r["objects"], 0),
                                       r["bytes_per_object"] or float("inf"))
        out.append(f"| {r['objects']:,} | {fmt(r['object_json_bytes'], 0)} | {r['attempt']} | "
                   f"{fmt(r['seconds'], 2)} | {fmt(r['server_list_seconds'], 2)} | "
                   f"{fmt(r['cpu_seconds'], 2)} | {fmt((r['rss_bytes'] or 0) / 2**20)} | "
                   f"{fmt(r['bytes_per_object'], 0)} |")
    out.append("")
    empties = {r["objects"]: r["empty_rss_bytes"] for r in entry["results"]}
    if empties:
        out.append("Each size's baseline is the same process with the same fake hypervisor (its "
                   "domains are the bench's, not the operator's) over a namespace with no "
                   "ElasticVM: " + ", ".join(f"{fmt(v / 2**20)} MiB with {k:,} fake domains"
                                             for k, v in sorted(empties.items())) + ".")
        out.append("")
    for size, target in ((10000, 3.0), (100000, 30.0)):
        if size in worst:
            out.append(f"Restart target at {size:,} objects ≤ {target:.0f} s: "
                       f"{verdict(worst[size], target)} (worst attempt).")
    if 100000 in per_object:
        out.append("")
        out.append(f"Memory target ≤ 1,024 B per cached ElasticVM at 100,000: "
                   f"{verdict(per_object[100000], 1024)} (worst attempt).")
    sizes = sorted(per_object)
    if len(sizes) > 1:
        above = {r["objects"]: r["rss_bytes"] - r["empty_rss_bytes"] for r in entry["results"]
                 if r["rss_bytes"]}
        a, b = sizes[0], sizes[-1]
        out.append("")
        out.append(f"Growth from {a:,} to {b:,} objects: "
                   f"{(above[b] - above[a]) / (b - a):,.0f} bytes per added object (RSS above "
                   "each size's baseline).")

#!/usr/bin/env python3
"""Runs the benchmarks of tests/bench/ (built in --build-dir), starts the API servers they
need, collects their RESULT lines and writes BENCHMARKS.md. scripts/bench builds and calls
it; ctest calls it with --smoke --only NAME --no-report (label `bench`).

    run_bench.py --build-dir DIR [--smoke] [--only throughput,memory,...] [--out FILE]
                 [--no-report] [--command "what the user ran"]

Benchmarks: throughput, memory, apply_latency, restart, real_server (a real kube-apiserver +
etcd from $KUBEBUILDER_ASSETS: restart, memory, convergence by workers, apply latency), scale
and big_cache (the same server: tests/bench/scale_bench.py), libvirt (needs root + libvirtd),
virsh (needs root + libvirtd), profile (perf, on the throughput bench).
`--baseline-binary B` (scale): the same agents run from a hotplug-operator built before
label selection, for the ratio.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "apiserver"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from control_plane import ControlPlane, assets_dir  # noqa: E402
from launch import ApiServerProcess  # noqa: E402
from kubeconfig import write_kubeconfig  # noqa: E402
import scale_bench  # noqa: E402

LSAN_SUPPRESSIONS = os.path.join(ROOT, "tests", "integration", "lsan.supp")

ALL = ["throughput", "memory", "apply_latency", "restart", "real_server", "scale", "big_cache",
       "libvirt", "virsh", "profile", "autoscale", "autoscale_reaction", "metrics_scrape"]
CRD = os.path.join(ROOT, "crd", "hotplug.dev_elasticvms.yaml")


def load_average():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def run(command, log, timeout, env=None):
    """Runs a benchmark, echoing its stdout; returns (exit code, RESULT objects)."""
    print("$ " + " ".join(command), flush=True)
    results = []
    # A sanitizer build (the smoke runs of scripts/test): what cpprestsdk's pooled TLS
    # connections still hold in OpenSSL at exit is not our leak, as for every operator the
    # tests start (tests/integration/lsan.supp).
    env = dict(env if env is not None else os.environ)
    env.setdefault("LSAN_OPTIONS", f"suppressions={LSAN_SUPPRESSIONS}")
    with open(log, "ab") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env=env)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            for line in process.stdout:
                if line.startswith("RESULT "):
                    results.append(json.loads(line[len("RESULT "):]))
                else:
                    print(line, end="", flush=True)
            code = process.wait()
        finally:
            timer.cancel()
    if code != 0:
        print(f"(exit {code}; stderr in {log})", flush=True)
    return code, results


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SyntheticServer:
    """tests/bench/synthetic_apiserver.py, started on port 0."""

    def __enter__(self):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "synthetic_apiserver.py"), "--port", "0"],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError("synthetic_apiserver.py did not start")
        self.url = "http://127.0.0.1:" + line.split()[1]
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- one function per benchmark: returns {"results": [...], "command": ..., "note": ...} ---

def bench_throughput(ctx):
    args = (["--objects", "100", "--rounds", "1", "--slow-objects", "16", "--slow-workers",
             "1,4"] if ctx.smoke else
            ["--objects", "2000", "--rounds", "5", "--slow-objects", "256",
             "--slow-latency-ms", "50", "--slow-workers", "1,2,4,8,16,32,64"])
    command = [ctx.binary("tests/bench/throughput_bench")] + args
    code, results = run(command, ctx.log("throughput"), 600)
    return {"code": code, "results": results, "command": command}


def bench_memory(ctx):
    sizes = "0,100,1000" if ctx.smoke else "0,1000,10000,100000"
    code, results = 0, []
    # The whole process (informer + controller), then the informer's cache alone.
    for extra in ([], ["--informer-only"]):
        with SyntheticServer() as server:
            command = [ctx.binary("tests/bench/memory_bench"), "--server", server.url,
                       "--sizes", sizes] + extra
            one_code, one_results = run(command, ctx.log("memory"), 1200)
        code = code or one_code
        results += one_results
    command[command.index(server.url)] = "URL"
    return {"code": code, "results": results, "command": command[:-1] + ["[--informer-only]"]}


def bench_apply_latency(ctx):
    args = (["--objects", "200", "--rate", "10", "--seconds", "3"] if ctx.smoke else
            ["--objects", "10000", "--rate", "20", "--seconds", "60"])
    args += ["--workers", "2", "--observe-ms", "1", "--set-vcpu-ms", "15"]
    server_args = ["--crd", CRD] if shutil.which("kubectl") else []
    with ApiServerProcess(extra_args=server_args, start_timeout_s=60) as api:
        command = [ctx.binary("tests/bench/apply_latency_bench"), "--server", api.url] + args
        code, results = run(command, ctx.log("apply_latency"), 1800)
    note = ("test API server with the CRD's schema validation" if server_args else
            "test API server WITHOUT schema validation (no kubectl to convert the CRD)")
    return {"code": code, "results": results, "command": command, "note": note}


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return answer.read().decode()
    except OSError:
        return None


def metric_sum(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def create_objects(api, namespace, count, threads=8):
    """POSTs vm-0 .. vm-<count-1> (1 vCPU) into `namespace` with a few threads."""
    def worker(start):
        for i in range(start, count, threads):
            body = json.dumps({"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                               "metadata": {"name": f"vm-{i}", "namespace": namespace},
                               "spec": {"cpu": {"vcpus": 1}}}).encode()
            request = urllib.request.Request(
                f"{api.url}/apis/hotplug.dev/v1alpha1/namespaces/{namespace}/elasticvms",
                data=body, method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def paged_list_seconds(api, namespace, page_size=500):
    """How long the test API server takes to answer the informer's paged LIST by itself."""
    start = time.monotonic()
    token = ""
    while True:
        url = (f"{api.url}/apis/hotplug.dev/v1alpha1/namespaces/{namespace}/elasticvms"
               f"?limit={page_size}" + (f"&continue={token}" if token else ""))
        with urllib.request.urlopen(url, timeout=60) as answer:
            body = json.loads(answer.read())
        token = body["metadata"].get("continue", "")
        if not token:
            return time.monotonic() - start


def operator_run(ctx, kubeconfig, count, log_name, stop_when, wait_for_log=None,
                 namespace="restart", workers=2, sample=None, call_log=None):
    """Starts hotplug-operator on the fake hypervisor and polls its /metrics until
    stop_when(metrics text) or 600 s; returns (command, seconds from spawn to that moment or
    None, CPU seconds it used by then). With wait_for_log, /metrics is polled only once that
    text is in the operator's log (read every 5 ms), so scraping does not load the process
    while it starts. sample(pid), when given, is called at that moment (its value lands in
    OPERATOR_SAMPLES[-1]). call_log: the fake hypervisor's --fake-call-log, so that what one
    run changed (the owner claims above all) is there for the next, as on a real host."""
    port = free_port()
    command = [ctx.binary("hotplug-operator-testing"), "--hypervisor=fake",
               f"--fake-domains={count}", f"--kubeconfig={kubeconfig}", f"--namespace={namespace}",
               f"--workers={workers}", f"--metrics-bind-address=127.0.0.1:{port}",
               "--health-probe-bind-address=0"] + ([f"--fake-call-log={call_log}"]
                                                    if call_log else [])
    log_path = ctx.log(log_name)
    with open(log_path, "ab") as stderr, open(log_path, "rb") as reader:
        reader.seek(0, os.SEEK_END)
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=stderr, stderr=stderr)
        reached = None
        cpu_seconds = None
        needle = wait_for_log.encode() if wait_for_log else b""
        recent = b""  # the log's newest bytes, enough to hold a needle cut by a read
        try:
            while time.monotonic() - start < 600 and process.poll() is None:
                if needle:
                    recent = recent[-len(needle):] + reader.read()
                    if needle not in recent:
                        time.sleep(0.005)
                        continue
                    needle = b""
                text = scrape(port)
                if text is not None and stop_when(text):
                    reached = time.monotonic() - start
                    cpu_seconds = process_cpu_seconds(process.pid)
                    OPERATOR_SAMPLES.append(sample(process.pid) if sample else None)
                    break
                time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return command, reached, cpu_seconds


OPERATOR_SAMPLES = []


def resident_bytes(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def process_cpu_seconds(pid):
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_restart(ctx):
    count = 300 if ctx.smoke else 10000
    runs = 1 if ctx.smoke else 3
    results = []
    server_args = ["--namespace", "restart"] + (["--crd", CRD] if shutil.which("kubectl") else [])
    with ApiServerProcess(extra_args=server_args, start_timeout_s=60) as api, \
            tempfile.TemporaryDirectory() as tmp:
        kubeconfig = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.port,
                                      namespace="restart")
        created = time.monotonic()
        create_objects(api, "restart", count)
        print(f"restart: {count} ElasticVMs created in {time.monotonic() - created:.1f} s",
              flush=True)

        # First run: every object gets its status, as a long-running operator leaves them.
        def converged(text):
            return (metric_sum(text, "hotplug_status_writes_total") >= count and
                    metric_sum(text, "workqueue_depth") == 0)
        _, prime, _ = operator_run(ctx, kubeconfig, count, "restart", converged)
        print(f"restart: first start converged {count} objects in "
              f"{prime if prime is not None else float('nan'):.1f} s", flush=True)

        # Restarts: from spawn until the cache holds every object and each was queued.
        def requeued(text):
            return (metric_sum(text, "hotplug_informer_cache_objects") >= count and
                    metric_sum(text, "workqueue_adds_total") >= count)
        for attempt in range(runs):
            list_seconds = paged_list_seconds(api, "restart")
            command, seconds, cpu = operator_run(ctx, kubeconfig, count, "restart", requeued,
                                                 wait_for_log='"msg":"listed elasticvms"')
            shown = f"{seconds:.3f} s" if seconds is not None else "never"
            print(f"restart {attempt + 1}: {count} objects cached and queued {shown} after "
                  f"spawn; the server alone answers the same paged LIST in "
                  f"{list_seconds:.3f} s; the operator used {cpu or 0:.2f} s of CPU", flush=True)
            results.append({"bench": "restart", "objects": count, "attempt": attempt + 1,
                            "seconds": seconds, "server_list_seconds": list_seconds,
                            "operator_cpu_seconds": cpu,
                            "first_start_converged_seconds": prime})
    code = 0 if all(r["seconds"] is not None for r in results) else 1
    return {"code": code, "results": results, "command": command}


def libvirt_ready():
    if os.geteuid() != 0:
        return "needs root"
    if subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True).returncode != 0:
        return "libvirtd is not running"
    return None


def bench_libvirt(ctx):
    binary = ctx.binary("tests/bench/libvirt_setvcpu_bench")
    if not os.path.exists(binary):
        return {"skipped": "libvirt_setvcpu_bench is not built (tests/bench/libvirt.cmake "
                           "needs the libvirt backend and the e2e guest)"}
    why = libvirt_ready()
    if why:
        return {"skipped": why}
    args = ["--samples", "2", "--max-vcpus", "8"] if ctx.smoke else []
    command = [binary] + args
    print("$ " + " ".join(command), flush=True)
    with open(ctx.log("libvirt"), "ab") as stderr:
        process = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                 timeout=1800)
    print(process.stdout, flush=True)
    return {"code": process.returncode, "results": [], "command": command,
            "text": process.stdout}


def bench_virsh(ctx):
    binary = ctx.binary("tests/bench/virsh_setvcpus_bench")
    if not os.path.exists(binary):
        return {"skipped": "virsh_setvcpus_bench is not built (needs the e2e guest library)"}
    why = libvirt_ready()
    if why:
        return {"skipped": why}
    args = ["--samples", "1"] if ctx.smoke else ["--samples", "5"]
    command = [binary] + args
    code, results = run(command, ctx.log("virsh"), 1800)
    return {"code": code, "results": results, "command": command}


def bench_autoscale(ctx):
    args = ["--objects", "100", "--samples", "3"] if ctx.smoke else ["--objects", "10000",
                                                                      "--samples", "20"]
    command = [ctx.binary("tests/bench/autoscale_bench")] + args
    code, results = run(command, ctx.log("autoscale"), 600)
    return {"code": code, "results": results, "command": command}


def bench_metrics_scrape(ctx):
    sizes = [100, 1000] if ctx.smoke else [1000, 10000, 100000]
    scrapes = "3" if ctx.smoke else "50"
    results, code = [], 0
    for objects in sizes:
        command = [ctx.binary("tests/bench/metrics_scrape_bench"), "--objects", str(objects),
                   "--scrapes", scrapes]
        one_code, one = run(command, ctx.log("metrics_scrape"), 600)
        code = code or one_code
        results += one
    return {"code": code, "results": results, "command": command[:1] + ["--objects", "N",
                                                                       "--scrapes", scrapes]}


def section_metrics_scrape(out, entry):
    out.append("| objects | one scrape p50 / p99 / max (ms) | exposition (B) | one object's "
               "change (µs) |")
    out.append("|---|---|---|---|")
    for r in entry["results"]:
        t = r["scrape"]
        out.append(f"| {r['objects']:,} | {fmt(t['p50_ms'], 3)} / {fmt(t['p99_ms'], 3)} / "
                   f"{fmt(t['max_ms'], 3)} | {r['exposition_bytes']:,} | "
                   f"{fmt(r['change_us'], 2)} |")


def bench_autoscale_reaction(ctx):
    binary = ctx.binary("tests/bench/autoscale_reaction_bench")
    if not os.path.exists(binary):
        return {"skipped": "autoscale_reaction_bench is not built (needs the libvirt backend "
                           "and the e2e guest)"}
    why = libvirt_ready()
    if why:
        return {"skipped": why}
    args = ["--trials-default", "0", "--trials-short", "1"] if ctx.smoke else []
    command = [binary] + args
    code, results = run(command, ctx.log("autoscale_reaction"), 1800)
    return {"code": code, "results": results, "command": command}


def section_autoscale_reaction(out, entry):
    out.append("One TCG guest; each trial idles, then burns all its CPUs, and autoscale (Auto, "
               "target 60 %, a sample every 5 s, the load averaged over 15 s) plugs one vCPU.")
    out.append("")
    out.append("| up window | n | load → first vCPU plugged p50 / p99 s | load → guest reports "
               "it online p50 / p99 s |")
    out.append("|---|---|---|---|")
    for r in entry["results"]:
        p, o = r["load_to_plug"], r["load_to_online"]
        out.append(f"| {r['up_window_s']} s | {p['n']} | {fmt(p['p50_ms'] / 1000)} / "
                   f"{fmt(p['p99_ms'] / 1000)} | {fmt(o['p50_ms'] / 1000)} / "
                   f"{fmt(o['p99_ms'] / 1000)} |")


def section_autoscale(out, entry):
    for r in entry["results"]:
        t = r["turn_us_per_object_sample"]
        out.append(f"{r['objects']} autoscaled objects, {r['samples']} samples each: one "
                   f"Autoscaler::Turn (read the fake sample, ring, utilisation, HPA rule, "
                   f"windows, bounds) costs p50 {fmt(t['p50_ms'], 2)} µs, p99 "
                   f"{fmt(t['p99_ms'], 2)} µs per object per sample (over the sample rounds); "
                   f"DecideVcpus alone on a full 5 min window ({r['history_entries']} "
                   f"recommendations) {fmt(r['decide_ns'], 0)} ns.")


def bench_profile(ctx):
    if shutil.which("perf") is None or subprocess.run(
            ["perf", "stat", "-e", "instructions", "true"], capture_output=True).returncode != 0:
        return {"skipped": "perf cannot count instructions here"}
    data = os.path.join(ctx.logs, "perf.data")
    args = (["--objects", "100", "--rounds", "1"] if ctx.smoke else
            ["--objects", "2000", "--rounds", "10"])
    command = ["perf", "record", "-F", "999", "-g", "-o", data, "--",
               ctx.binary("tests/bench/throughput_bench")] + args + [
               "--slow-objects", "1", "--slow-workers", "1", "--slow-latency-ms", "1"]
    code, _ = run(command, ctx.log("profile"), 900)
    report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                             "--sort", "dso,symbol", "--percent-limit", "1.5", "-g", "none"],
                            capture_output=True, text=True)
    # perf pads its columns to the widest symbol: squeeze them, and cut long template names.
    lines = [re.sub(r"\s+", " ", line).strip()[:150] for line in report.stdout.splitlines()
             if line.strip() and not line.startswith("#")]
    text = "\n".join(lines[:30])
    print(text, flush=True)
    return {"code": code, "results": [], "command": command, "text": text}


# --- the same on a real kube-apiserver + etcd (tests/support/control_plane.py) ---

def create_real_objects(cp, namespace, first, last, threads=8):
    """POSTs vm-<first> .. vm-<last-1> (1 vCPU) into `namespace` of the real API server."""
    errors = []

    def worker(offset):
        for i in range(first + offset, last, threads):
            status, answer = cp.request("POST", f"/apis/hotplug.dev/v1alpha1/namespaces/"
                                        f"{namespace}/elasticvms", {
                                            "apiVersion": "hotplug.dev/v1alpha1",
                                            "kind": "ElasticVM",
                                            "metadata": {"name": f"vm-{i}",
                                                         "namespace": namespace},
                                            "spec": {"cpu": {"vcpus": 1}}}, timeout_s=60)
            if status != 201:
                errors.append(f"vm-{i}: {status} {answer}")
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")


def real_list_seconds(cp, namespace, resource_version):
    """How long the real API server alone answers the informer's first LIST."""
    start = time.monotonic()
    token = ""
    while True:
        query = f"limit=500&continue={token}" if token else \
            "limit=500" + (f"&resourceVersion={resource_version}" if resource_version else "")
        status, body = cp.get(f"/apis/hotplug.dev/v1alpha1/namespaces/{namespace}/elasticvms?"
                              f"{query}", timeout_s=120)
        if status != 200:
            raise RuntimeError(f"LIST answered {status}: {str(body)[:200]}")
        token = body["metadata"].get("continue", "")
        if not token:
            return time.monotonic() - start, len(json.dumps(body["items"][:1]))


def pids_cpu(pids):
    return sum(process_cpu_seconds(pid) for pid in pids)


def drained(count):
    """The operator's metrics say: every object cached, reconciled once, nothing queued."""
    def check(text):
        return (metric_sum(text, "hotplug_informer_cache_objects") >= count and
                metric_sum(text, "hotplug_reconcile_total") >= count and
                metric_sum(text, "workqueue_depth") == 0 and
                metric_sum(text, "workqueue_unfinished_work_seconds") == 0)
    return check


def real_restarts(ctx, cp, kubeconfig, count, runs, results, call_log):
    """Restarts of the operator on `count` objects whose statuses are written, on the
    hypervisor the first start left (`call_log`: its domains already claimed)."""
    for attempt in range(runs):
        watch_cache_list, object_bytes = real_list_seconds(cp, "restart", "0")
        quorum_list, _ = real_list_seconds(cp, "restart", "")
        _, seconds, cpu = operator_run(ctx, kubeconfig, count, "real_restart", drained(count),
                                       wait_for_log='"msg":"listed elasticvms"',
                                       sample=resident_bytes, call_log=call_log)
        rss = OPERATOR_SAMPLES[-1] if seconds is not None else None
        print(f"real restart {attempt + 1}: {count} objects synced and drained "
              f"{seconds if seconds is not None else float('nan'):.3f} s after spawn "
              f"(the server alone: LIST rv=0 {watch_cache_list:.3f} s, paged quorum LIST "
              f"{quorum_list:.3f} s); RSS {(rss or 0) / 2**20:.1f} MiB", flush=True)
        results.append({"bench": "real_restart", "objects": count, "attempt": attempt + 1,
                        "seconds": seconds, "watch_cache_list_seconds": watch_cache_list,
                        "quorum_list_seconds": quorum_list, "operator_cpu_seconds": cpu,
                        "rss_bytes": rss, "object_json_bytes": object_bytes})


def real_convergence(ctx, cp, kubeconfig_for, count, workers, results):
    """A fresh namespace of `count` objects without status; one operator with `workers`
    workers writes every status. CPU of each process over the run says who limits it."""
    namespace = f"converge-{workers}"
    cp.kubectl("create", "namespace", namespace)
    create_real_objects(cp, namespace, 0, count)
    server_pids = [cp.apiserver.process.pid, cp.etcd.process.pid]
    server_cpu = pids_cpu(server_pids)

    def written(text):
        return (metric_sum(text, "hotplug_status_writes_total") >= count and
                metric_sum(text, "workqueue_depth") == 0)
    _, seconds, cpu = operator_run(ctx, kubeconfig_for(namespace), count, "real_converge",
                                   written, namespace=namespace, workers=workers)
    server_cpu = pids_cpu(server_pids) - server_cpu
    rate = count / seconds if seconds else None
    print(f"real convergence: {count} status writes with {workers} worker(s) in "
          f"{seconds if seconds is not None else float('nan'):.1f} s "
          f"({rate or 0:.0f}/s); CPU: operator {cpu or 0:.1f} s, kube-apiserver + etcd "
          f"{server_cpu:.1f} s", flush=True)
    results.append({"bench": "real_convergence", "objects": count, "workers": workers,
                    "seconds": seconds, "writes_per_second": rate,
                    "operator_cpu_seconds": cpu, "server_cpu_seconds": server_cpu})


def bench_real_server(ctx):
    if not assets_dir():
        why = ("no kube-apiserver: set KUBEBUILDER_ASSETS (.ci/run and scripts/test use "
               "../shared/kubernetes/bin)")
        if os.environ.get("CI") == "true":
            print(f"FAIL (CI=true): {why}", flush=True)
            return {"code": 1, "results": [], "command": ["scripts/bench", "--only",
                                                           "real_server"]}
        return {"skipped": why}
    sizes = [300] if ctx.smoke else [1000, 10000]
    runs = 1 if ctx.smoke else 3
    worker_counts = [2] if ctx.smoke else [1, 2, 4]
    converge_count = 200 if ctx.smoke else 10000
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        with ControlPlane(tmp) as cp:
            cp.install_crd()
            cp.kubectl("create", "namespace", "restart")

            def kubeconfig_for(namespace):
                return cp.write_kubeconfig(os.path.join(tmp, f"{namespace}.kubeconfig"),
                                           namespace=namespace)
            kubeconfig = kubeconfig_for("restart")
            # The process with nothing to cache: what the per-object figures are above.
            operator_run(ctx, kubeconfig, 0, "real_restart", drained(0),
                         sample=resident_bytes)
            empty_rss = OPERATOR_SAMPLES[-1]
            # One fake hypervisor across the starts: a restart finds the domains claimed by
            # the first start, as it would on a real host (libvirt keeps the claim in the
            # domain's metadata), instead of claiming each again with a second pass.
            calls = os.path.join(tmp, "restart-calls.log")
            created = 0
            for size in sizes:
                start = time.monotonic()
                create_real_objects(cp, "restart", created, size)
                print(f"real: {size - created} ElasticVMs created in "
                      f"{time.monotonic() - start:.1f} s", flush=True)
                fresh = size - created
                created = size
                # A first start writes the new objects' statuses, as a running operator would.
                _, prime, _ = operator_run(
                    ctx, kubeconfig, size, "real_restart",
                    lambda text: (metric_sum(text, "hotplug_status_writes_total") >= fresh and
                                  metric_sum(text, "workqueue_depth") == 0), call_log=calls)
                print(f"real: first start wrote {fresh} statuses in "
                      f"{prime if prime is not None else float('nan'):.1f} s", flush=True)
                real_restarts(ctx, cp, kubeconfig, size, runs, results, calls)
            for workers in worker_counts:
                real_convergence(ctx, cp, kubeconfig_for, converge_count, workers, results)
            # Apply -> first SetVcpu with 10k objects watched, on this server.
            apply_args = (["--objects", "200", "--rate", "10", "--seconds", "3"] if ctx.smoke
                          else ["--objects", "10000", "--rate", "20", "--seconds", "60"])
            apply_command = [ctx.binary("tests/bench/apply_latency_bench"), "--kubeconfig",
                             kubeconfig_for("default")] + apply_args + [
                             "--workers", "2", "--observe-ms", "1", "--set-vcpu-ms", "15"]
            code, apply_results = run(apply_command, ctx.log("real_apply_latency"), 1800)
            results += [dict(r, bench="real_apply_latency") for r in apply_results]
    for r in results:
        r["empty_rss_bytes"] = empty_rss
    restarts_ok = all(r["seconds"] is not None for r in results
                      if r["bench"] in ("real_restart", "real_convergence"))
    return {"code": code or (0 if restarts_ok else 1), "results": results,
            "command": ["scripts/bench", "--only", "real_server"],
            "apply_command": apply_command}


def section_real_server(out, entry):
    results = entry["results"]
    out.append("kube-apiserver v1.26.1 (../shared/kubernetes/bin) + Debian's etcd 3.4 with "
               "fsync on, both on 127.0.0.1 of this machine; objects as that server serves "
               "them (managedFields and all); fake hypervisor.")
    out.append("")
    out.append("| objects | attempt | spawn → synced and drained (s) | server alone: LIST "
               "rv=0 (s) | server alone: paged quorum LIST (s) | operator CPU (s) | RSS (MiB) "
               "| RSS above empty, per object (B) |")
    out.append("|---|---|---|---|---|---|---|---|")
    worst = {}
    for r in results:
        if r["bench"] != "real_restart":
            continue
        per_object = ((r["rss_bytes"] - r["empty_rss_bytes"]) / r["objects"]
                      if r["rss_bytes"] and r["empty_rss_bytes"] else None)
        worst[r["objects"]] = max(worst.get(r["objects"], 0), r["seconds"] or float("inf"))
        out.append(f"| {r['objects']:,} | {r['attempt']} | {fmt(r['seconds'], 3)} | "
                   f"{fmt(r['watch_cache_list_seconds'], 3)} | "
                   f"{fmt(r['quorum_list_seconds'], 3)} | "
                   f"{fmt(r['operator_cpu_seconds'], 2)} | "
                   f"{fmt((r['rss_bytes'] or 0) / 2**20, 1)} | {fmt(per_object, 0)} |")
    out.append("")
    if 10000 in worst:
        out.append(f"Restart target at 10,000 objects ≤ 3 s: {verdict(worst[10000], 3.0)} "
                   "(worst attempt). The first LIST asks for resourceVersion=0 and is answered "
                   "whole from the server's watch cache; the quorum LIST beside it is what a "
                   "LIST without a resourceVersion costs.")
        out.append("")
    out.append("| objects | workers | status writes/s | wall (s) | operator CPU (s) | "
               "kube-apiserver + etcd CPU (s) |")
    out.append("|---|---|---|---|---|---|")
    for r in results:
        if r["bench"] == "real_convergence":
            out.append(f"| {r['objects']:,} | {r['workers']} | {fmt(r['writes_per_second'], 0)} "
                       f"| {fmt(r['seconds'], 1)} | {fmt(r['operator_cpu_seconds'], 1)} | "
                       f"{fmt(r['server_cpu_seconds'], 1)} |")
    out.append("")
    out.append("Who limits convergence: the CPU columns over the same wall time, on 2 cores "
               "shared by all three processes.")
    for r in results:
        if r["bench"] == "real_apply_latency":
            out.append("")
            out.append("```")
            out.append(" ".join(entry["apply_command"]))
            out.append("```")
            out.append("")
            out.append(f"Apply → first SetVcpu on this server, {r.get('objects', '?')} objects "
                       f"watched: acked → call p50 {fmt(r['acked_to_call']['p50_ms'], 2)} ms, "
                       f"p99 {fmt(r['acked_to_call']['p99_ms'], 2)} ms; sent → call p99 "
                       f"{fmt(r['sent_to_call']['p99_ms'], 2)} ms. Target p99 ≤ 5 ms: "
                       f"{verdict(r['acked_to_call']['p99_ms'], 5)} (from acked).")


BENCHES = {"throughput": bench_throughput, "memory": bench_memory,
           "apply_latency": bench_apply_latency, "restart": bench_restart,
           "real_server": bench_real_server, "scale": scale_bench.bench_scale,
           "big_cache": scale_bench.bench_big_cache, "libvirt": bench_libvirt,
           "virsh": bench_virsh, "profile": bench_profile, "autoscale": bench_autoscale,
           "autoscale_reaction": bench_autoscale_reaction, "metrics_scrape": bench_metrics_scrape}


class Context:
    def __init__(self, build_dir, smoke, logs, baseline_binary=None):
        self.build_dir = build_dir
        self.smoke = smoke
        self.logs = logs
        self.baseline_binary = baseline_binary

    def binary(self, relative):
        return os.path.join(self.build_dir, relative)

    def log(self, name):
        return os.path.join(self.logs, name + ".stderr.log")


# --- BENCHMARKS.md ---

def revision():
    """The commit measured, and whether the working tree differed from it."""
    def git(*args):
        return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + (" plus uncommitted changes in the working tree" if dirty else "")


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu}


def fmt(value, digits=1):
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else str(value)


def verdict(value, target, lower_is_better=True):
    if value is None:
        return "not measured"
    met = value <= target if lower_is_better else value >= target
    ratio = value / target if target else float("inf")
    return (f"**met** ({ratio:.2f}x of the target)" if met else
            f"**missed** by {value - target:,.2f} ({ratio:.2f}x the target)")


def section_throughput(out, entry):
    rows = [r for r in entry["results"] if r.get("mode") != "slow"]
    slow = [r for r in entry["results"] if r.get("mode") == "slow"]
    out.append("| mode | workers | passes/s | CPU µs/pass | status writer calls | SetVcpu calls |")
    out.append("|---|---|---|---|---|---|")
    for r in rows:
        out.append(f"| {r['mode']} | {r['workers']} | {fmt(r['passes_per_second'], 0)} | "
                   f"{fmt(r['cpu_us_per_pass'])} | {r['status_writes']} | "
                   f"{r['set_vcpu_calls']} |")
    if slow:
        out.append("")
        out.append(f"Slow plugs: every SetVcpu takes {slow[0]['latency_ms']} ms, "
                   f"{slow[0]['objects']} objects each need one plug.")
        out.append("")
        out.append("| workers | passes/s | ideal (workers × 1000/latency) | of ideal | "
                   "max SetVcpu in flight |")
        out.append("|---|---|---|---|---|")
        for r in slow:
            out.append(f"| {r['workers']} | {fmt(r['passes_per_second'])} | "
                       f"{fmt(r['ideal_passes_per_second'])} | "
                       f"{100 * r['passes_per_second'] / r['ideal_passes_per_second']:.0f}% | "
                       f"{r['max_in_flight']} |")


def section_memory(out, entry):
    for scope in ("informer+controller", "informer"):
        rows = [r for r in entry["results"] if r.get("scope") == scope]
        if rows:
            memory_table(out, rows, scope)


def memory_table(out, results, scope):
    out.append("Informer cache + Controller (its key→domain index, the work queue), the whole "
               "process:" if scope != "informer" else "Informer cache alone (--informer-only):")
    out.append("")
    out.append("| objects cached | RSS MiB | above empty MiB | bytes/object | time to cache s |")
    out.append("|---|---|---|---|---|")
    for r in results:
        above = (r["rss_bytes"] - r["baseline_bytes"]) / 1048576
        if r["phase"] == "deleted":
            out.append(f"| 0 (after deleting all) | {fmt(r['rss_bytes'] / 1048576)} | "
                       f"{fmt(above)} | | |")
            continue
        per = r["bytes_per_object"]
        out.append(f"| {r['objects']:,} | {fmt(r['rss_bytes'] / 1048576)} | {fmt(above)} | "
                   f"{fmt(per, 0) if r['objects'] else ''} | {fmt(r['seconds_to_cache'])} |")
    sample = next((r for r in results if "object_json_bytes" in r), None)
    if sample and scope == "informer":
        out.append("")
        out.append(f"Each object is {sample['object_json_bytes']:,} bytes of JSON as served "
                   "(labels, last-applied annotation, managedFields, spec, status with three "
                   "conditions).")
    out.append("")
    cached = [r for r in results if r["phase"] == "cached"]
    slopes = []
    for a, b in zip(cached, cached[1:]):
        if a["objects"] > 0 and b["objects"] > a["objects"]:
            slope = (b["rss_bytes"] - a["rss_bytes"]) / (b["objects"] - a["objects"])
            slopes.append(slope)
            out.append(f"Growth from {a['objects']:,} to {b['objects']:,} objects: "
                       f"{slope:,.0f} bytes per added object.")
    largest = max(cached, key=lambda r: r["objects"]) if cached else None
    if largest and largest["objects"] > 0:
        out.append("")
        out.append(f"Target ≤ 1,024 bytes/object above the empty process, at the largest size "
                   f"({largest['objects']:,}): {verdict(largest['bytes_per_object'], 1024)}. "
                   "Smaller sizes carry fixed costs (hash-table buckets, arena growth) spread "
                   "over fewer objects.")
    out.append("")


def section_apply(out, entry):
    for r in entry["results"]:
        out.append(f"{r['objects']:,} ElasticVMs, {r['workers']} workers, Observe "
                   f"{r['observe_ms']} ms, SetVcpu {r['set_vcpu_ms']} ms, "
                   f"{r['rate_per_second']} changes/s; {r['done']} changes done, "
                   f"{r['unfinished']} unfinished, {r['failed']} failed. Start: cache synced "
                   f"in {fmt(r['synced_seconds'], 2)} s, first statuses written by "
                   f"{fmt(r['converged_seconds'])} s (objects created in "
                   f"{fmt(r['load_seconds'])} s).")
        out.append("")
        out.append("| interval | n | p50 ms | p90 ms | p99 ms | max ms |")
        out.append("|---|---|---|---|---|---|")
        for key, label in [("acked_to_call", "PATCH answered → SetVcpu entered"),
                           ("sent_to_call", "PATCH sent → SetVcpu entered"),
                           ("seen_to_call", "watch event decoded → SetVcpu entered"),
                           ("sent_to_seen", "PATCH sent → watch event decoded"),
                           ("sent_to_acked", "PATCH sent → PATCH answered"),
                           ("acked_to_ready", "PATCH answered → Ready=True written"),
                           ("sent_to_ready", "PATCH sent → Ready=True written")]:
            s = r[key]
            out.append(f"| {label} | {s['n']} | {fmt(s['p50_ms'], 2)} | {fmt(s['p90_ms'], 2)} | "
                       f"{fmt(s['p99_ms'], 2)} | {fmt(s['max_ms'], 2)} |")
        out.append("")
        out.append("The API server accepted each change between *sent* and *answered*; "
                   "the target is measured from *answered* (the lower bound) and, stricter, "
                   "from *sent*.")
        out.append("")
        out.append(f"Target p99 ≤ 20 ms apply → first SetVcpu: from answered "
                   f"{verdict(r['acked_to_call']['p99_ms'], 20)}; from sent "
                   f"{verdict(r['sent_to_call']['p99_ms'], 20)}.")
    if entry.get("note"):
        out.append("")
        out.append(f"Server: {entry['note']}.")


def section_restart(out, entry):
    out.append("| attempt | objects | spawn → all cached and queued (s) | the test API server "
               "alone answering the same paged LIST (s) | the rest (s) | operator CPU used by then (s) |")
    out.append("|---|---|---|---|---|---|")
    values = []
    for r in entry["results"]:
        values.append(r["seconds"])
        own = (fmt(r["seconds"] - r["server_list_seconds"], 3)
               if r["seconds"] is not None else "")
        out.append(f"| {r['attempt']} | {r['objects']:,} | "
                   f"{fmt(r['seconds'], 3) if r['seconds'] is not None else 'never'} | "
                   f"{fmt(r['server_list_seconds'], 3)} | {own} | "
                   f"{fmt(r.get('operator_cpu_seconds'), 2)} |")
    if entry["results"]:
        prime = entry["results"][0]["first_start_converged_seconds"]
        out.append("")
        out.append(f"Before the restarts, a first start wrote every object's status in "
                   f"{fmt(prime) if prime is not None else 'n/a'} s (2 workers, test API "
                   "server).")
    known = [v for v in values if v is not None]
    worst = max(known) if known else None
    out.append("")
    out.append("The server's own time is measured just before each start, alone; it varies "
               "with the machine's load, so *the rest* (start-up, decoding, queueing) is only "
               "indicative and can come out negative.")
    out.append("")
    out.append(f"Target ≤ 3 s: {verdict(worst, 3.0)} (worst attempt). The LIST is paged "
               "500 objects at a time as client-go's reflector does; the test API server "
               "copies and filters its whole store for every page, so its time grows with the "
               "square of the object count — a real API server answers from its watch cache.")


def section_virsh(out, entry):
    for r in entry["results"]:
        out.append(f"{r['samples']} TCG guest(s), each: one path 1 → 4 vCPUs, the other 4 → 7, "
                   "alternating which goes first.")
        out.append("")
        out.append("| path | n | p50 ms | max ms |")
        out.append("|---|---|---|---|")
        for key, label in [("virsh_call", "`virsh setvcpus N --live` returned"),
                           ("pass_call", "reconcile pass (observe + 3 × SetVcpu) returned"),
                           ("virsh_online", "virsh → guest reports all CPUs online"),
                           ("pass_online", "reconcile → guest reports all CPUs online")]:
            s = r[key]
            out.append(f"| {label} | {s['n']} | {fmt(s['p50_ms'], 2)} | {fmt(s['max_ms'], 2)} |")
        out.append("")
        out.append(f"Ratio reconcile pass / virsh (returned, p50): "
                   f"{r['ratio_pass_to_virsh_p50']:.2f}. virsh's figure includes starting the "
                   "virsh process and opening its connection, as a user typing it pays.")


def write_report(path, entries, command, started, source, loads):
    info = machine()
    out = ["# Benchmarks", "",
           "Written by `scripts/bench` (tests/bench/run_bench.py); do not edit by hand. What each "
           "benchmark measures and how is at the top of its source in tests/bench/.", "",
           f"- machine: {info['nproc']} CPUs, {info['cpu']}, kernel {info['kernel']}",
           f"- date: {started} (UTC)",
           f"- source: {source}",
           f"- command: `{command}`",
           f"- load average (1/5/15 min) before each benchmark: " +
           "; ".join(f"{name} {load}" for name, load in loads),
           "- the machine is shared: other builds and tests ran at the same time, so figures "
           "are pessimistic and vary between runs", ""]
    titles = {"throughput": "Reconcile throughput (in-memory objects, fake hypervisor)",
              "memory": "Resident memory per cached ElasticVM",
              "apply_latency": "Apply → first per-vCPU call, with 10k ElasticVMs watched",
              "restart": "Restart: spawn → every object cached and requeued (test API server)",
              "real_server": "On a real kube-apiserver: restart, memory, convergence, apply "
                             "latency",
              "scale": "Scale-out on a real kube-apiserver: one agent per node, label-selected",
              "big_cache": "On a real kube-apiserver: restart and memory at 1k, 10k and 100k "
                           "objects",
              "libvirt": "Plug overhead on a real guest vs bare virDomainSetVcpu",
              "virsh": "virsh setvcpus --live 1 → 4",
              "profile": "Profile (perf record of the throughput bench, every mode)",
              "autoscale": "Autoscale decision cost per object per sample (fake hypervisor)",
              "autoscale_reaction": "Autoscale reaction on a real guest: load → vCPU plugged "
                                    "→ online",
              "metrics_scrape": "One /metrics scrape with N ElasticVMs cached"}
    sections = {"throughput": section_throughput, "memory": section_memory,
                "apply_latency": section_apply, "restart": section_restart,
                "real_server": section_real_server, "scale": scale_bench.section_scale,
                "big_cache": lambda out, e: scale_bench.section_big_cache(out, e, verdict),
                "virsh": section_virsh, "autoscale": section_autoscale,
                "autoscale_reaction": section_autoscale_reaction,
                "metrics_scrape": section_metrics_scrape}
    for name, entry in entries:
        out.append(f"## {titles[name]}")
        out.append("")
        if "skipped" in entry:
            out.append(f"Skipped: {entry['skipped']}.")
            out.append("")
            continue
        out.append("```")
        out.append(" ".join(entry["command"]))
        out.append("```")
        out.append("")
        if entry.get("code"):
            out.append(f"**The benchmark exited with {entry['code']}**; figures may be partial.")
            out.append("")
        if name in sections:
            sections[name](out, entry)
        elif entry.get("text"):
            out.append("```")
            out.append(entry["text"].rstrip())
            out.append("```")
            if name == "profile":
                out.append("")
                out.append("Self time by function over all modes. JSON encoding/decoding (the "
                           "status write's body and the answer read back) and the allocator "
                           "lead; the reconciler, the work queue and the fake hypervisor do not "
                           "appear above the cut-off.")
        out.append("")
    with open(path, "w") as handle:
        handle.write("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--command", default=" ".join(sys.argv))
    parser.add_argument("--baseline-binary", default=os.environ.get("HOTPLUG_BENCH_BASELINE"),
                        help="scale: a hotplug-operator from before label selection")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or ALL
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ALL)}")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    source = revision()
    logs = tempfile.mkdtemp(prefix="hotplug-bench-")
    ctx = Context(os.path.abspath(args.build_dir), args.smoke, logs, args.baseline_binary)
    entries, loads, failed = [], [], []
    for name in names:
        loads.append((name, load_average()))
        print(f"=== {name} (load average {loads[-1][1]})", flush=True)
        entry = BENCHES[name](ctx)
        if "skipped" in entry:
            print(f"skipped: {entry['skipped']}", flush=True)
        elif entry.get("code"):
            failed.append(name)
        entries.append((name, entry))
    if not args.no_report:
        write_report(args.out, entries, args.command, started, source, loads)
        print(f"wrote {args.out}")
    print(f"stderr of the benchmarks: {logs}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

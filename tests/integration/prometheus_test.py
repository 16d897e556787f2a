#!/usr/bin/env python3
"""hotplug-operator's metrics, dashboard and alerts, checked by a real Prometheus.

Runs the built operator with the fake hypervisor (with a per-call latency, so the
histograms have shape) twice: against the test API server driven by kubectl, then in
standalone mode over a folder. Each time a Prometheus on 127.0.0.1 scrapes it every second
with deploy/monitoring's rules loaded. The ElasticVMs grow and shrink; Prometheus must then
return a number for the plug p99 and the apply -> synced p99, no alert may be active, a run
of real failures must make the failure alert pending, every PromQL expression of the
dashboard and of the rules must parse (and return data where its series exist in the run),
every rule must evaluate healthy, and `promtool check rules` must accept the PrometheusRule's
spec. (That the chart ships the same rules and dashboard is tests/chart's check, by helm.)

    python3 tests/integration/prometheus_test.py --operator BUILD/hotplug-operator

Python 3 standard library only. Every wait polls with a deadline; every process started
here is stopped by its PID.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "apiserver"))

import check_lib  # noqa: E402
from check_lib import CheckFailed, expect, free_port, http_get, stop_process  # noqa: E402
from kubeconfig import write_kubeconfig  # noqa: E402
from launch import ApiServerProcess  # noqa: E402

CRD_FILE = os.path.join(ROOT, "crd", "hotplug.dev_elasticvms.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "monitoring", "dashboard.json")
RULES = os.path.join(ROOT, "deploy", "monitoring", "prometheusrule.yaml")

VMS = ["vm-0", "vm-1", "vm-2", "vm-3"]
# Domains with no guest agent: asking them for guestOnline=agent fails (GuestAgentUnavailable),
# which must show in the failure metrics and raise the failure alert (more than 3).
BROKEN_VMS = [f"vm-broken-{index}" for index in range(5)]
FAKE_DOMAINS = "".join(f"- {{name: {name}, maximumVcpus: 8, currentVcpus: 1}}\n" for name in VMS)
FAKE_DOMAINS += "".join(f"- {{name: {name}, maximumVcpus: 8, currentVcpus: 1, guestAgent: false}}\n"
                        for name in BROKEN_VMS)
FAILURE_ALERT = "HotplugOperationFailures"
WATCH_CLOSE_AFTER = 20
SYNC_P99 = ("histogram_quantile(0.99, sum by (le) "
            "(rate(hotplug_sync_duration_seconds_bucket[1m])))")
# Each ElasticVM goes through these vCPU counts: plugs and unplugs both ways.
VCPU_STEPS = [4, 2, 6, 3]
FAKE_VCPU_LATENCY = "20ms"
# What the dashboard's Grafana variables stand for in this run.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$node": ".*"}
PLUG_P99 = ('histogram_quantile(0.99, sum by (le, operation) '
            '(rate(hotplug_vcpu_operation_duration_seconds_bucket[1m])))')
METRIC_NAME = re.compile(r"\b((?:hotplug|workqueue|rest_client)_[a-z_]+)\b")
# A trailing threshold: the expression without it must return data when its series exist.
THRESHOLD = re.compile(r"^(.*?)\s*(?:>|<|==|!=|>=|<=)\s*[0-9.]+\s*$", re.S)


def poll(predicate, what, timeout_s, interval_s=0.25):
    """check_lib.poll with a deadline always given and a slower interval (Prometheus
    queries are not free)."""
    return check_lib.poll(predicate, what, timeout_s, interval_s)


def scrape(port):
    """The operator's /metrics as {series: value}, or {} when it does not answer."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    samples = {}
    if status == 200:
        for line in body.splitlines():
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                samples[series] = float(value)
    return samples


def rules_spec_text(path):
    """The PrometheusRule's spec as a plain Prometheus rules file (the spec is the last
    top-level key: its lines, dedented by two)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    start = lines.index("spec:") + 1
    out = []
    for line in lines[start:]:
        if line and not line.startswith("  "):
            raise CheckFailed(f"{path}: spec must be the last top-level key, found {line!r}")
        out.append(line[2:])
    return "\n".join(out)


# ----------------------------------------------------------------------------------------
# The processes.


class Operator:
    """The operator binary; its JSON log lines are kept and searched."""

    def __init__(self, binary, source_args, domains_file, log_path):
        self.command = [binary, *source_args, "--hypervisor=fake",
                        f"--fake-domains-file={domains_file}",
                        f"--fake-vcpu-latency={FAKE_VCPU_LATENCY}",
                        "--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=0",
                        "--workers=2", "--log-level=info"]
        self.log_path = log_path
        self.lines = []
        self.lock = threading.Lock()
        self.process = None
        self.reader = None

    def start(self):
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        self.reader = threading.Thread(target=self._read, name="operator-log", daemon=True)
        self.reader.start()
        return self

    def _read(self):
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in self.process.stderr:  # ends when the process closes stderr
                log.write(line)
                with self.lock:
                    self.lines.append(line)

    def metrics_port(self):
        with self.lock:
            lines = list(self.lines)
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "serving metrics" and entry.get("port", "0") != "0":
                return int(entry["port"])
        expect(self.process.poll() is None,
               f"the operator exited with {self.process.returncode}; log: {self.log_path}")
        return None

    def stop(self):
        stop_process(self.process, timeout_s=30)
        if self.reader:
            self.reader.join(timeout=5)


class Prometheus:
    def __init__(self, binary, workdir, target_port, rules_file):
        self.port = free_port()
        self.workdir = workdir
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as handle:
            # The job and the labels a ServiceMonitor would give (deploy/monitoring), so the
            # rules' selectors and "by (namespace, node)" see what they would in a cluster.
            handle.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules_file}
scrape_configs:
  - job_name: hotplug-operator-metrics
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
        labels:
          namespace: hotplug-system
          node: test-node
""")
        self.command = [binary, f"--config.file={config}",
                        f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
                        f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self.log_path = os.path.join(workdir, "prometheus.log")
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=log)
        poll(lambda: self._ready(), "Prometheus to be ready", timeout_s=60)
        return self

    def _ready(self):
        expect(self.process.poll() is None,
               f"prometheus exited with {self.process.returncode}; log: {self.log_path}")
        return http_get(f"http://127.0.0.1:{self.port}/-/ready")[0] == 200

    def api(self, path, **params):
        """Calls /api/v1/<path>; returns the decoded answer (status error included)."""
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}")
        expect(status in (200, 400, 422), f"/api/v1/{path}: HTTP {status}: {body[:300]}")
        return json.loads(body)

    def query(self, expression):
        return self.api("query", query=expression)

    def stop(self):
        stop_process(self.process)


# ----------------------------------------------------------------------------------------
# Where the ElasticVMs come from: the test API server driven with kubectl, or a folder.


def elasticvm(name, cpu):
    return {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"domain": name, "cpu": cpu}}


class KubeSource:
    """The test API server (ending each watch after WATCH_CLOSE_AFTER events, so the informer
    reconnects with reason "closed", which no alert counts) and the real kubectl."""

    name = "kubernetes"

    def __init__(self, workdir):
        self.workdir = workdir
        self.kubeconfig = os.path.join(workdir, "kubeconfig")
        self.binary = shutil.which("kubectl") or "/usr/bin/kubectl"
        self.api = None

    def start(self):
        self.api = ApiServerProcess(extra_args=["--crd", CRD_FILE,
                                                f"--watch-close-after={WATCH_CLOSE_AFTER}"],
                                    log_path=os.path.join(self.workdir, "apiserver.log")).start()
        write_kubeconfig(self.kubeconfig, self.api.port)
        return ["--kubeconfig", self.kubeconfig, "--namespace=default"]

    def stop(self):
        if self.api is not None:
            self.api.stop()

    def run(self, *args, stdin=""):
        result = subprocess.run([self.binary, "--kubeconfig", self.kubeconfig, *args],
                                input=stdin, capture_output=True, text=True, timeout=60)
        expect(result.returncode == 0,
               f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def apply_vms(self, names, cpu):
        documents = [json.dumps(elasticvm(name, cpu)) for name in names]
        self.run("apply", "-f", "-", stdin="\n".join(documents))

    def all_synced(self, vcpus, metrics_port):
        del metrics_port  # kubectl reads the status itself
        items = json.loads(self.run("get", "elasticvms", "-n", "default", "-o", "json"))["items"]
        items = [item for item in items if item["metadata"]["name"] in VMS]
        if len(items) != len(VMS):
            return False
        for item in items:
            status = item.get("status") or {}
            ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
            if (status.get("observedGeneration") != item["metadata"].get("generation")
                    or (status.get("vcpus") or {}).get("current") != vcpus
                    or not ready or ready[0].get("status") != "True"):
                return False
        return True


class FolderSource:
    """--standalone DIR: one file per ElasticVM, replaced editor-style (temp + rename). The
    status files are the operator's business; convergence is read from its own metrics."""

    name = "standalone"

    def __init__(self, workdir):
        self.folder = os.path.join(workdir, "elasticvms")
        self.rounds = 0

    def start(self):
        os.makedirs(self.folder, exist_ok=True)
        return ["--standalone", self.folder]

    def stop(self):
        pass

    def apply_vms(self, names, cpu):
        for name in names:
            temp = os.path.join(self.folder, f".{name}.yaml.tmp")
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(elasticvm(name, cpu), handle)  # JSON is YAML
            os.rename(temp, os.path.join(self.folder, f"{name}.yaml"))
        self.rounds += 1

    def all_synced(self, vcpus, metrics_port):
        """Every round gives each object a new generation, and so one sync observation."""
        del vcpus
        samples = scrape(metrics_port)
        return (samples.get("hotplug_sync_duration_seconds_count", 0) >= self.rounds * len(VMS)
                and samples.get("hotplug_vcpu_drift") == 0
                and samples.get('hotplug_elasticvms{condition="Ready",status="True"}') == len(VMS))


# ----------------------------------------------------------------------------------------
# The checks.


def dashboard_expressions():
    """(panel title, expression with Grafana's variables replaced) for every target."""
    dashboard = json.load(open(DASHBOARD, encoding="utf-8"))
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expression = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expression = expression.replace(variable, value)
            expect("$" not in expression,
                   f"panel {panel['title']!r}: unknown Grafana variable in {expression}")
            out.append((panel["title"], expression))
    expect(out, "the dashboard has no queries")
    return out


def existing_metric_names(prometheus):
    answer = prometheus.api("label/__name__/values")
    expect(answer["status"] == "success", f"label values: {answer}")
    return set(answer["data"])


def check_expression(prometheus, where, expression, names_present, strip_threshold):
    """The expression parses and evaluates; it returns data when every metric it names
    exists in this run. Returns True when data was required (and found)."""
    answer = prometheus.query(expression)
    expect(answer["status"] == "success",
           f"{where}: Prometheus rejected {expression!r}: {answer.get('error')}")
    names = set(METRIC_NAME.findall(expression))
    expect(names or "up{" in expression, f"{where}: names no metric: {expression}")
    if not names <= names_present:
        return False
    data_expression = expression
    if strip_threshold:
        match = THRESHOLD.match(expression)
        if not match:
            return False  # absent(...) and the like: parsing is all that can be asked
        data_expression = match.group(1)
    answer = prometheus.query(data_expression)
    expect(answer["status"] == "success" and answer["data"]["result"],
           f"{where}: no data from {data_expression!r} although {sorted(names)} exist")
    return True


def check_with_prometheus(args, workdir, source):
    domains_file = os.path.join(workdir, "domains.yaml")
    with open(domains_file, "w", encoding="utf-8") as handle:
        handle.write(FAKE_DOMAINS)
    rules_file = os.path.join(workdir, "rules.yaml")
    with open(rules_file, "w", encoding="utf-8") as handle:
        handle.write(rules_spec_text(RULES))

    result = subprocess.run([args.promtool, "check", "rules", rules_file],
                            capture_output=True, text=True, timeout=60)
    expect(result.returncode == 0, f"promtool check rules: {result.stdout}{result.stderr}")
    print(f"ok: promtool check rules: {result.stdout.strip().splitlines()[-1]}")

    operator = prometheus = None
    try:
        operator = Operator(args.operator, source.start(), domains_file,
                            os.path.join(workdir, "operator.log")).start()
        metrics_port = poll(operator.metrics_port, "the operator's metrics port", timeout_s=30)
        status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        expect(status == 200 and "hotplug_build_info{" in body,
               f"/metrics on port {metrics_port}: HTTP {status}")
        print(f"ok: the operator serves /metrics on 127.0.0.1:{metrics_port}")

        prometheus = Prometheus(args.prometheus, workdir, metrics_port, rules_file).start()
        poll(lambda: any(t["health"] == "up" for t in
                         prometheus.api("targets")["data"]["activeTargets"]),
             "Prometheus to scrape the operator", timeout_s=30)
        print(f"ok: Prometheus on 127.0.0.1:{prometheus.port} scrapes the operator")

        for vcpus in VCPU_STEPS:
            source.apply_vms(VMS, {"vcpus": vcpus})
            poll(lambda: source.all_synced(vcpus, metrics_port),
                 f"every ElasticVM Ready at {vcpus} vCPUs", timeout_s=60)
            print(f"ok: {len(VMS)} ElasticVMs synced at {vcpus} vCPUs")

        # The counts are exact: one sync per object and generation, one call per vCPU.
        samples = scrape(metrics_port)
        expected = {"hotplug_sync_duration_seconds_count": len(VMS) * len(VCPU_STEPS)}
        plugs = unplugs = 0
        for before, after in zip([1] + VCPU_STEPS, VCPU_STEPS):
            plugs += max(after - before, 0)
            unplugs += max(before - after, 0)
        expected['hotplug_vcpu_operations_total{operation="plug",result="success"}'] = (
            plugs * len(VMS))
        expected['hotplug_vcpu_operations_total{operation="unplug",result="success"}'] = (
            unplugs * len(VMS))
        expected['hotplug_vcpu_operation_duration_seconds_count{operation="plug",'
                 'result="success"}'] = plugs * len(VMS)
        for series, value in expected.items():
            expect(samples.get(series) == value,
                   f"{series} is {samples.get(series)}, expected {value}")
        print(f"ok: {len(VMS) * len(VCPU_STEPS)} syncs, {plugs * len(VMS)} plugs and "
              f"{unplugs * len(VMS)} unplugs counted exactly")

        def plug_p99():
            answer = prometheus.query(PLUG_P99)
            expect(answer["status"] == "success", f"{PLUG_P99}: {answer}")
            for sample in answer["data"]["result"]:
                if sample["metric"].get("operation") == "plug":
                    value = float(sample["value"][1])
                    if not math.isnan(value):
                        return value
            return None

        p99 = poll(plug_p99, "a plug p99 from Prometheus", timeout_s=60)
        # Every plug takes at least the fake's 20 ms, so every observation is in the bucket
        # (0.01, 0.025] or above: the interpolated p99 cannot be lower than 10 ms.
        expect(0.01 < p99 <= 60, f"plug p99 {p99}s: not what 20 ms plugs can give")
        print(f"ok: Prometheus: vCPU plug p99 = {p99:.6f} s ({PLUG_P99})")

        def sync_p99():
            result = prometheus.query(SYNC_P99)["data"]["result"]
            value = float(result[0]["value"][1]) if result else math.nan
            return None if math.isnan(value) else value

        print(f"ok: Prometheus: apply -> synced p99 = "
              f"{poll(sync_p99, 'an apply -> synced p99', timeout_s=30):.6f} s ({SYNC_P99})")
        if isinstance(source, KubeSource):
            reconnects = 'hotplug_informer_reconnects_total{reason="closed"}'
            poll(lambda: prometheus.query(f"{reconnects} > 0")["data"]["result"],
                 f"{reconnects} in Prometheus", timeout_s=30)
            print(f"ok: {reconnects} counts the watches the server ended")
        else:
            activity = "hotplug_informer_last_activity_timestamp_seconds"
            expect(not prometheus.query(activity)["data"]["result"],
                   f"{activity} exists without an informer: HotplugWatchStalled would fire")
            print(f"ok: no {activity} without an informer")
        # Nothing is wrong so far: no alert may be firing or pending (the rules are
        # evaluated every second).
        poll(lambda: prometheus.api("rules")["data"]["groups"], "Prometheus to load the rules",
             timeout_s=30)
        # (Drift seen mid-change may leave an alert pending until the next evaluation.)
        poll(lambda: prometheus.query("hotplug_vcpu_drift == 0")["data"]["result"],
             "Prometheus to see no vCPU drift", timeout_s=30)
        last_alerts = []

        def no_alerts():
            last_alerts[:] = prometheus.api("alerts")["data"]["alerts"]
            return not last_alerts

        try:
            poll(no_alerts, "no active alert", timeout_s=15)
        except CheckFailed:
            raise CheckFailed(f"alerts active while every ElasticVM is synced: {last_alerts}")
        print("ok: no alert is active while every ElasticVM is synced")

        # Now something fails on every pass: the failure counter and its alert must say so.
        source.apply_vms(BROKEN_VMS, {"vcpus": 2, "guestOnline": "agent"})
        failures = 'hotplug_operation_failures_total{resource="vcpu",reason="GuestAgentUnavailable"}'
        poll(lambda: prometheus.query(f"{failures} > 0")["data"]["result"],
             f"{failures} in Prometheus", timeout_s=60)

        def failure_alert():
            return [alert for alert in prometheus.api("alerts")["data"]["alerts"]
                    if alert["labels"].get("alertname") == FAILURE_ALERT
                    and alert["labels"].get("reason") == "GuestAgentUnavailable"]

        alert = poll(failure_alert, f"{FAILURE_ALERT} to become pending", timeout_s=60)[0]
        print(f"ok: {failures} counts the failures and {FAILURE_ALERT} is {alert['state']}")
        names_present = existing_metric_names(prometheus)

        with_data = 0
        expressions = dashboard_expressions()
        for title, expression in expressions:
            with_data += check_expression(prometheus, f"dashboard panel {title!r}", expression,
                                          names_present, strip_threshold=False)
        print(f"ok: {len(expressions)} dashboard queries parse; {with_data} returned data "
              "(the rest name series this run has none of)")
        absent = sorted({name for _, e in expressions for name in METRIC_NAME.findall(e)}
                        - names_present)
        print(f"   metrics with no series in this run: {', '.join(absent) or 'none'}")

        groups = poll(lambda: prometheus.api("rules")["data"]["groups"],
                      "Prometheus to load the rules", timeout_s=30)
        rules = [rule for group in groups for rule in group["rules"]]
        poll(lambda: all(r["health"] == "ok" for g in prometheus.api("rules")["data"]["groups"]
                         for r in g["rules"]),
             "every rule evaluated healthy", timeout_s=30)
        with_data = 0
        for rule in rules:
            with_data += check_expression(prometheus, f"alert {rule['name']}", rule["query"],
                                          names_present | {"up"}, strip_threshold=True)
        expect(len(rules) == rules_spec_text(RULES).count("- alert:"),
               "Prometheus loaded a different number of rules than the file has")
        print(f"ok: {len(rules)} alert rules load healthy and parse; {with_data} returned data "
              "without their threshold")
        return p99
    finally:
        for process in (prometheus, operator, source):
            if process is not None:
                process.stop()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operator", help="the built hotplug-operator binary")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    parser.add_argument("--mode", choices=["kubernetes", "standalone", "both"], default="both",
                        help="where the ElasticVMs come from (default: both, one after the other)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if not args.operator:
        parser.error("--operator is required")

    workdir = tempfile.mkdtemp(prefix="hotplug-prometheus-")
    try:
        for tool in (args.prometheus, args.promtool, args.operator):
            expect(shutil.which(tool) or os.access(tool, os.X_OK), f"{tool} not found")
        sources = {"kubernetes": [KubeSource], "standalone": [FolderSource],
                   "both": [KubeSource, FolderSource]}[args.mode]
        for source_type in sources:
            run_dir = os.path.join(workdir, source_type.name)
            os.makedirs(run_dir)
            print(f"--- {source_type.name}")
            check_with_prometheus(args, run_dir, source_type(run_dir))
    except Exception:  # noqa: BLE001 - report every failure the same way
        traceback.print_exc()
        print(f"FAILED (logs in {workdir})")
        return 1
    if args.keep:
        print(f"work folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

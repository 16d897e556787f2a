"""Shared pieces of the operator's integration tests: a REAL kube-apiserver + etcd
(tests/support/control_plane.py) with the CRD and deploy/'s RBAC applied, the built
hotplug-operator binary with --hypervisor=fake running under a ServiceAccount token, the real
kubectl, and the fake hypervisor's call log. Standard library only. Every wait is a poll with
a deadline; every process started here is stopped by its PID.

    with Cluster("converge") as cluster:           # a fresh namespace on a shared real server
        operator = cluster.operator("operator", [f"--namespace={cluster.namespace}", ...])
        cluster.apply_vm("web-01", 4); poll(lambda: cluster.converged("web-01", 4), ...)

`Cluster` is the real server. Each one gets a fresh namespace; by default the checks of one
process share one control plane (started on first use, ~5 s; a check may restart its
kube-apiserver, and it is running again when the Cluster is left), and a check that needs
other flags or would spoil it for the others (compacts etcd) passes `apiserver_args` or
`own_server=True`. The operator authenticates with a token of deploy/'s ServiceAccount
`hotplug-operator` (or `hotplug-operator-central` with identity="central", the one bound to
the Lease Role); the API server's audit log records every request, and leaving a Cluster
fails the check when the operator got a 403 (`allow_forbidden` for a check that wants one).

`TestApiCluster` is the project's own test API server (tests/apiserver/), only for faults a
real server cannot be made to produce: 500 windows, 409 storms, scripted 410s.
"""

import atexit
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
APISERVER_DIR = os.path.join(ROOT, "tests", "apiserver")
SUPPORT_DIR = os.path.join(ROOT, "tests", "support")
sys.path.insert(0, APISERVER_DIR)
sys.path.insert(0, SUPPORT_DIR)

from check_lib import CheckFailed, expect, http_get, operator_binary, poll  # noqa: E402,F401
from control_plane import ControlPlane, require_assets  # noqa: E402,F401
from kubeconfig import write_kubeconfig  # noqa: E402
from launch import ApiServerProcess  # noqa: E402

CRD_FILE = os.path.join(ROOT, "crd", "hotplug.dev_elasticvms.yaml")
DEPLOY_DIR = os.path.join(ROOT, "deploy")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

SYSTEM_NAMESPACE = "hotplug-system"
AGENT_LEASES = "hotplug-system-agents"  # where deploy/ keeps the agents' Leases
# identity -> (ServiceAccount, the deploy/ files that create and bind it)
IDENTITIES = {
    "agent": ("hotplug-operator", ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"]),
    "central": ("hotplug-operator-central",
                ["namespace.yaml", "rbac.yaml", "central/serviceaccount.yaml",
                 "central/rbac.yaml"]),
}
# What deploy/central/rbac.yaml lets the central ServiceAccount touch: one Lease, by name.
CENTRAL_LEASE = "hotplug-operator"
OPERATOR_USER_AGENT = "hotplug-operator/"
# kubectl's words for an API server that is down, starting or overloaded: worth a retry.
RETRYABLE = ("InternalError", "ServiceUnavailable", "connection refused", "was refused",
             "connection reset", "EOF", "TLS handshake timeout", "currently unable to handle")

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""


class Operator:
    """One hotplug-operator process; its stderr (JSON log lines) goes to a file."""

    def __init__(self, workdir, name, kubeconfig, args):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.args = [operator_binary(), f"--kubeconfig={kubeconfig}",
                     "--health-probe-bind-address=127.0.0.1:0", "--hypervisor=fake"] + args
        help_text = subprocess.run([self.args[0], "--help"], capture_output=True, text=True,
                                   timeout=10).stdout
        if "--metrics-bind-address" in help_text:
            self.args.insert(3, "--metrics-bind-address=127.0.0.1:0")
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        # A sanitizer build: OpenSSL state of cpprestsdk's never-ending pool threads is not a
        # leak of ours (see lsan.supp). Harmless for other builds.
        env.setdefault("LSAN_OPTIONS", f"suppressions={os.path.join(HERE, 'lsan.supp')}")
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=log,
                                        stdin=subprocess.DEVNULL, env=env)
        log.close()
        return self

    def lines(self):
        """The JSON log lines written so far."""
        out = []
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    try:
                        out.append(json.loads(raw))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return out

    def logged(self, message):
        return [line for line in self.lines() if line.get("msg") == message]

    def forbidden_lines(self):
        """Log lines that carry an API answer 403 Forbidden."""
        return [line for line in self.lines()
                if any("Forbidden" in str(value) or "forbidden" in str(value)
                       for key, value in line.items() if key != "msg")]

    def health_port(self):
        found = poll(lambda: self.logged("health server listening"),
                     f"{self.name} to report its health port", 15)
        return int(found[-1]["port"])

    def metrics_port(self):
        found = poll(lambda: self.logged("metrics server listening"),
                     f"{self.name} to report its metrics port", 15)
        return int(found[-1]["port"])

    def probe(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port()}{path}",
                                        timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def metrics(self):
        """{(name, frozenset(labels.items())): value} of one scrape of /metrics."""
        status, body = http_get(f"http://127.0.0.1:{self.metrics_port()}/metrics")
        expect(status == 200, f"{self.name} /metrics answered {status}: {body[:200]}")
        return parse_metrics(body)

    def metric(self, name, **labels):
        """Sum of the series of `name` whose labels include `labels` (0 when none)."""
        return sum(value for (series, series_labels), value in self.metrics().items()
                   if series == name and set(labels.items()) <= series_labels)

    def signal(self, number):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, number)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout_s):
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s=30.0):
        """SIGTERM by PID, then SIGKILL past the deadline. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            code = self.wait_exit(timeout_s)
            if code is None:
                self.process.kill()
                code = self.process.wait(timeout=10)
            return code
        return self.process.returncode

    def tail(self, count=30):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-count:])
        except FileNotFoundError:
            return ""


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset of (label, value))}: value}."""
    out = {}
    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        head, _, value = raw.rpartition(" ")
        labels = {}
        name = head
        if "{" in head:
            name, _, rest = head.partition("{")
            for part in rest.rstrip("}").split(","):
                if "=" in part:
                    key, _, quoted = part.partition("=")
                    labels[key.strip()] = quoted.strip().strip('"')
        try:
            out[(name, frozenset(labels.items()))] = float(value)
        except ValueError:
            pass
    return out


class _ClusterBase:
    """What every flavour gives a test: a work directory, kubectl as the user, operators,
    fake domains, and ElasticVM helpers in `self.namespace`."""

    namespace = "default"

    def __init__(self, name):
        self.name = name
        self.workdir = tempfile.mkdtemp(prefix=f"hotplug-{name}-")
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        self.operator_kubeconfig = self.kubeconfig
        self.operators = []
        self.env = dict(os.environ, KUBECONFIG=self.kubeconfig,
                        KUBECACHEDIR=os.path.join(self.workdir, "kubecache"),
                        HOME=self.workdir)

    def _finish(self, failed):
        for operator in self.operators:
            operator.stop()
        if not failed and not os.environ.get("KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print(f"  work directory kept: {self.workdir}")
            for operator in self.operators:
                print(f"  --- {operator.name} log (last lines) ---\n{operator.tail()}")

    def path(self, name):
        return os.path.join(self.workdir, name)

    def write_domains(self, domains, name="domains.yaml"):
        """domains: list of dicts for --fake-domains-file (JSON is YAML)."""
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(domains, handle)
        return path

    def operator(self, name, args, kubeconfig=None):
        operator = Operator(self.workdir, name, kubeconfig or self.operator_kubeconfig, args)
        self.operators.append(operator)
        return operator.start()

    def kubectl(self, *args, input_text=None, check=True, kubeconfig=None):
        env = self.env if kubeconfig is None else dict(self.env, KUBECONFIG=kubeconfig)
        result = subprocess.run([KUBECTL] + list(args), env=env, input=input_text,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise CheckFailed(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply_vm(self, name, vcpus, namespace=None, domain=None, extra_spec=None):
        spec = {"cpu": {"vcpus": vcpus}}
        if domain:
            spec["domain"] = domain
        spec.update(extra_spec or {})
        manifest = {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                    "metadata": {"name": name, "namespace": namespace or self.namespace},
                    "spec": spec}
        self.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))

    def patch_vcpus(self, name, vcpus, namespace=None, timeout_s=30.0):
        """kubectl patch, retried while the API answers 5xx or cannot be reached (as a person
        would retry)."""
        args = ("-n", namespace or self.namespace, "patch", "evm", name, "--type=merge",
                "-p", json.dumps({"spec": {"cpu": {"vcpus": vcpus}}}))

        def attempt():
            result = self.kubectl(*args, check=False)
            if result.returncode == 0:
                return True
            if any(word in result.stderr for word in RETRYABLE):
                return False
            raise CheckFailed(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        poll(attempt, f"kubectl patch of {name} to succeed", timeout_s, 0.2)

    def get_vm(self, name, namespace=None):
        result = self.kubectl("-n", namespace or self.namespace, "get", "evm", name, "-o",
                              "json", check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def converged(self, name, vcpus, namespace=None):
        """The object's status says desired = current = vcpus, Ready=True, for this generation."""
        vm = self.get_vm(name, namespace)
        if not vm:
            return None
        status = vm.get("status") or {}
        cpu = status.get("vcpus") or {}
        ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
        ok = (cpu.get("desired") == vcpus and cpu.get("current") == vcpus and ready and
              ready[0].get("status") == "True" and
              status.get("observedGeneration") == vm["metadata"].get("generation"))
        return vm if ok else None

    def events(self, namespace=None, **field_selector):
        args = ["-n", namespace or self.namespace, "get", "events", "-o", "json"]
        if field_selector:
            args += ["--field-selector",
                     ",".join(f"{key}={value}" for key, value in field_selector.items())]
        return json.loads(self.kubectl(*args).stdout)["items"]


class _SharedServer:
    """The control plane the checks of one process share (started on first use)."""
    plane = None
    workdir = None

    @classmethod
    def get(cls):
        if cls.plane is None:
            cls.workdir = tempfile.mkdtemp(prefix="hotplug-shared-apiserver-")
            cls.plane = start_control_plane(cls.workdir)
            # run_checks stops it; this covers a script that does not use run_checks.
            atexit.register(cls.stop)
        return cls.plane

    @classmethod
    def stop(cls):
        if cls.plane is not None:
            cls.plane.stop()
            cls.plane = None
            if not os.environ.get("KEEP_WORKDIR"):
                shutil.rmtree(cls.workdir, ignore_errors=True)


def audit_args(workdir):
    os.makedirs(workdir, exist_ok=True)
    policy = os.path.join(workdir, "audit-policy.yaml")
    with open(policy, "w", encoding="utf-8") as handle:
        handle.write(AUDIT_POLICY)
    return ["--audit-policy-file", policy,
            "--audit-log-path", os.path.join(workdir, "audit.log"),
            "--audit-log-format", "json", "--audit-log-mode", "blocking"]


def start_control_plane(workdir, apiserver_args=()):
    """etcd + kube-apiserver with an audit log, the CRD Established and deploy/'s namespace,
    ServiceAccounts and RBAC applied."""
    plane = ControlPlane(workdir, apiserver_args=audit_args(workdir) + list(apiserver_args))
    plane.audit_log_path = os.path.join(workdir, "audit.log")
    try:
        plane.start()
        plane.install_crd()
        files = sorted({f for _, paths in IDENTITIES.values() for f in paths},
                       key=lambda f: (f != "namespace.yaml", f))
        for name in files:
            plane.kubectl("apply", "-f", os.path.join(DEPLOY_DIR, name))
        # RBAC reaches the authorizer through an informer: wait until it answers for the
        # ServiceAccounts, so an operator started next is not refused by a race of the test.
        for account, verb, resource, namespace in (
                ("hotplug-operator", "watch", "elasticvms.hotplug.dev", "default"),
                ("hotplug-operator-central", "update", f"leases/{CENTRAL_LEASE}",
                 SYSTEM_NAMESPACE)):
            user = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{account}"
            poll(lambda: plane.kubectl("auth", "can-i", verb, resource, "-n", namespace,
                                       f"--as={user}", check=False).stdout.strip() == "yes",
                 f"RBAC to let {account} {verb} {resource}", 20, 0.1)
    except BaseException:
        print(plane.logs())
        plane.stop()
        raise
    return plane


class Cluster(_ClusterBase):
    """A real kube-apiserver + etcd, a fresh namespace, the user's kubeconfig (admin, context
    namespace = the fresh one) and the operator's (a ServiceAccount token of deploy/)."""

    def __init__(self, name, apiserver_args=(), own_server=False, identity="agent"):
        super().__init__(name)
        self.apiserver_args = list(apiserver_args)
        self.own_server = own_server or bool(self.apiserver_args)
        self.identity = identity
        self.plane = None
        self.namespace = f"{name}-{os.getpid() % 100000}-{int(time.time() * 1000) % 100000}"
        self.audit_start = 0
        self.allow_forbidden = False
        self.startups = []  # Unix times of start_apiserver() calls

    def __enter__(self):
        require_assets()
        if self.own_server:
            self.plane = start_control_plane(os.path.join(self.workdir, "server"),
                                             self.apiserver_args)
        else:
            self.plane = _SharedServer.get()
        try:
            self.audit_start = self._audit_size()
            self.plane.kubectl("create", "namespace", self.namespace)
            self.plane.write_kubeconfig(self.kubeconfig, namespace=self.namespace)
            self.operator_kubeconfig = self.service_account_kubeconfig(self.identity)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        try:
            for operator in self.operators:
                operator.stop()
            if not failed and not self.allow_forbidden:
                try:
                    self.expect_no_forbidden()
                except CheckFailed:
                    failed = True
                    raise
        finally:
            if failed and self.plane:
                print(self.plane.logs())
            self._finish(failed)
            if self.own_server and self.plane:
                self.plane.stop()
            elif self.plane and not self.plane.apiserver.alive():
                # A check that stopped the shared server and failed before starting it again.
                self.plane.start_apiserver()

    def service_account_kubeconfig(self, identity):
        """A kubeconfig with a fresh token of the identity's ServiceAccount (or the admin)."""
        if identity == "admin":
            return self.kubeconfig
        account = IDENTITIES[identity][0]
        token = self.plane.service_account_token(SYSTEM_NAMESPACE, account)
        return self.plane.write_kubeconfig(self.path(f"{identity}.kubeconfig"), token=token,
                                           namespace=self.namespace)

    # ---- what the server saw
    def _audit_size(self):
        try:
            return os.path.getsize(self.plane.audit_log_path)
        except OSError:
            return 0

    def audit(self):
        """The API server's audit entries (stage ResponseComplete/ResponseStarted) written
        since this Cluster started."""
        entries = []
        try:
            with open(self.plane.audit_log_path, encoding="utf-8", errors="replace") as handle:
                handle.seek(self.audit_start)
                for raw in handle:
                    try:
                        entries.append(json.loads(raw))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return entries

    def operator_requests(self):
        """Audit entries of the operator's own requests (by its User-Agent)."""
        return [e for e in self.audit()
                if (e.get("userAgent") or "").startswith(OPERATOR_USER_AGENT)]

    def start_apiserver(self):
        """Starts kube-apiserver again (after kill_apiserver) and notes when: see forbidden()."""
        self.startups.append(time.time())
        self.plane.start_apiserver()

    def _starting_windows(self):
        """[(start, ready)] Unix times: from each start_apiserver() to the server's first
        /readyz 200 after it (the readiness poll's own request, in the audit log)."""
        readies = sorted(_unix_time(e["stageTimestamp"]) for e in self.audit()
                         if (e.get("requestURI") or "").startswith("/readyz") and
                         (e.get("responseStatus") or {}).get("code") == 200)
        return [(began, next((t for t in readies if t >= began), began))
                for began in self.startups]

    def forbidden(self):
        """The operator's requests the server answered 403, and the operators' log lines
        carrying a Forbidden answer. A kube-apiserver that has just started answers 403 to
        every ServiceAccount until its RBAC caches sync, before it reports ready (seen: a watch
        refused 0.15 s after "Serving securely"); those, between a start_apiserver() and the
        first /readyz 200 after it, say nothing about the grants and are left out."""
        windows = self._starting_windows()

        def starting(unix_time):
            return any(start <= unix_time <= ready for start, ready in windows)
        refused = [f"{e.get('verb')} {e.get('requestURI')} as {e['user'].get('username')}"
                   for e in self.operator_requests()
                   if (e.get("responseStatus") or {}).get("code") == 403 and
                   not starting(_unix_time(e["stageTimestamp"]))]
        logged = [f"{op.name}: {line}" for op in self.operators for line in op.forbidden_lines()
                  if not starting(_unix_time(line.get("time", "")))]
        return refused, logged

    def expect_no_forbidden(self):
        refused, logged = self.forbidden()
        expect(not refused, f"the API server answered the operator 403: {refused[:5]}")
        expect(not logged, f"an operator logged a 403: {logged[:5]}")
        # The check means something only if the operator talked to the server as its
        # ServiceAccount at all.
        if self.operators and self.identity != "admin":
            account = IDENTITIES[self.identity][0]
            users = {e["user"].get("username") for e in self.operator_requests()}
            expect(f"system:serviceaccount:{SYSTEM_NAMESPACE}:{account}" in users,
                   f"no request of the operator as its ServiceAccount in the audit log "
                   f"(users: {users})")

    def request(self, method, path, body=None, identity=None, content_type=None):
        """One raw API call as the admin, or with a token of `identity`'s ServiceAccount."""
        token = None
        if identity:
            with open(self.service_account_kubeconfig(identity), encoding="utf-8") as handle:
                token = json.load(handle)["users"][0]["user"]["token"]
        kwargs = {"token": token} if token else {}
        return self.plane.request(method, path, body=body, content_type=content_type,
                                  **kwargs)


class TestApiCluster(_ClusterBase):
    """The project's own test API server + kubeconfig + kubectl + operators, for the faults a
    real kube-apiserver cannot be made to produce (500 windows, 409 storms, scripted 410s)."""

    def __init__(self, name, apiserver_args=()):
        super().__init__(name)
        self.api = ApiServerProcess(extra_args=["--crd", CRD_FILE] + list(apiserver_args),
                                    log_path=os.path.join(self.workdir, "apiserver.log"))

    def __enter__(self):
        self.api.start()
        write_kubeconfig(self.kubeconfig, self.api.port)
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self._finish(exc_type is not None)
        finally:
            self.api.stop()

    def faults(self, **changes):
        return self.api.admin("POST", "/_admin/faults", changes)

    def requests(self, since=0):
        return self.api.admin("GET", f"/_admin/requests?since={since}")["items"]


def _unix_time(stamp):
    """RFC 3339 UTC ("2026-12-01T21:15:37.306819Z", the audit log's and the operator's) ->
    Unix time; 0 when it is not one."""
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# The call log's lines that change a VM. It also records owner claims ("claim", "release")
# and pins ("pin"), which the fakes of other processes replay; no test counts those as steps.
VM_CHANGES = ("vcpu", "memory")


def read_call_log(path):
    calls = []
    try:
        with open(path, encoding="utf-8") as handle:
            for raw in handle:
                raw = raw.strip()
                if raw and json.loads(raw).get("op") in VM_CHANGES:
                    calls.append(json.loads(raw))
    except FileNotFoundError:
        pass
    return calls


def check_no_step_twice(calls, initial_enabled):
    """Every logged vCPU change changed something: a plug of a disabled vCPU, an unplug of an
    enabled one. (The fake rejects a change to the state a vCPU is already in, so a step done
    twice would show as a failed call, never logged; this also proves the order is sane.)
    Returns {domain: set(enabled ids)} after the calls."""
    enabled = {domain: set(range(count)) for domain, count in initial_enabled.items()}
    for call in calls:
        if call.get("op") != "vcpu":
            continue
        state = enabled.setdefault(call["domain"], {0})
        if call["enable"]:
            expect(call["id"] not in state, f"vCPU {call['id']} of {call['domain']} plugged "
                                            f"while already enabled: {call}")
            state.add(call["id"])
        else:
            expect(call["id"] in state, f"vCPU {call['id']} of {call['domain']} unplugged while "
                                        f"disabled: {call}")
            state.discard(call["id"])
    return enabled


def _exit_on_sigterm(signum, frame):
    # ctest's timeout sends SIGTERM: unwind the with-blocks so every server and operator
    # started here is stopped by its PID.
    raise SystemExit(128 + signum)


def run_checks(checks, argv):
    """Runs each (name, function) check; -k SUBSTRING selects. Exit code 1 if any fails.
    The real control plane the checks shared is stopped at the end."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    selected = None
    if "-k" in argv:
        selected = argv[argv.index("-k") + 1]
    failed = 0
    try:
        for name, check in checks:
            if selected and selected not in name:
                continue
            start = time.monotonic()
            try:
                check()
                print(f"PASS {name} ({time.monotonic() - start:.1f}s)", flush=True)
            except Exception as error:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - start:.1f}s): {error}", flush=True)
    finally:
        _SharedServer.stop()
    return 1 if failed else 0

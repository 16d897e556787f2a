"""Shared pieces of the operator's integration tests: the test API server, the built
hotplug-operator binary with --hypervisor=fake, the real kubectl, and the fake hypervisor's
call log. Standard library only. Every wait is a poll with a deadline; every process started
here is stopped by its PID.
"""

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
sys.path.insert(0, APISERVER_DIR)

from check_lib import CheckFailed, expect, operator_binary, poll  # noqa: E402,F401
from kubeconfig import write_kubeconfig  # noqa: E402
from launch import ApiServerProcess  # noqa: E402

CRD_FILE = os.path.join(ROOT, "crd", "hotplug.dev_elasticvms.yaml")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


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

    def health_port(self):
        found = poll(lambda: self.logged("health server listening"),
                     f"{self.name} to report its health port", 15)
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

    def signal(self, number):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, number)

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


class Cluster:
    """The test API server + kubeconfig + kubectl + operators, in a temporary directory."""

    def __init__(self, name, apiserver_args=()):
        self.name = name
        self.workdir = tempfile.mkdtemp(prefix=f"hotplug-{name}-")
        self.api = ApiServerProcess(extra_args=["--crd", CRD_FILE] + list(apiserver_args),
                                    log_path=os.path.join(self.workdir, "apiserver.log"))
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        self.operators = []
        self.env = dict(os.environ, KUBECONFIG=self.kubeconfig,
                        KUBECACHEDIR=os.path.join(self.workdir, "kubecache"),
                        HOME=self.workdir)

    def __enter__(self):
        self.api.start()
        write_kubeconfig(self.kubeconfig, self.api.port)
        return self

    def __exit__(self, exc_type, exc, tb):
        for operator in self.operators:
            operator.stop()
        self.api.stop()
        if exc_type is None and not os.environ.get("KEEP_WORKDIR"):
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

    def operator(self, name, args):
        operator = Operator(self.workdir, name, self.kubeconfig, args)
        self.operators.append(operator)
        return operator.start()

    def kubectl(self, *args, input_text=None, check=True):
        result = subprocess.run([KUBECTL] + list(args), env=self.env, input=input_text,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise CheckFailed(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply_vm(self, name, vcpus, namespace="default", domain=None, extra_spec=None):
        spec = {"cpu": {"vcpus": vcpus}}
        if domain:
            spec["domain"] = domain
        spec.update(extra_spec or {})
        manifest = {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                    "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        self.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))

    def patch_vcpus(self, name, vcpus, namespace="default", timeout_s=30.0):
        """kubectl patch, retried while the API answers 5xx (as a person would retry)."""
        args = ("-n", namespace, "patch", "evm", name, "--type=merge",
                "-p", json.dumps({"spec": {"cpu": {"vcpus": vcpus}}}))

        def attempt():
            result = self.kubectl(*args, check=False)
            if result.returncode == 0:
                return True
            if any(word in result.stderr for word in ("InternalError", "ServiceUnavailable")):
                return False
            raise CheckFailed(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        poll(attempt, f"kubectl patch of {name} to succeed", timeout_s, 0.2)

    def get_vm(self, name, namespace="default"):
        result = self.kubectl("-n", namespace, "get", "evm", name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def converged(self, name, vcpus, namespace="default"):
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

    def faults(self, **changes):
        return self.api.admin("POST", "/_admin/faults", changes)

    def requests(self, since=0):
        return self.api.admin("GET", f"/_admin/requests?since={since}")["items"]


def read_call_log(path):
    calls = []
    try:
        with open(path, encoding="utf-8") as handle:
            for raw in handle:
                raw = raw.strip()
                if raw:
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


def run_checks(checks, argv):
    """Runs each (name, function) check; -k SUBSTRING selects. Exit code 1 if any fails."""
    selected = None
    if "-k" in argv:
        selected = argv[argv.index("-k") + 1]
    failed = 0
    for name, check in checks:
        if selected and selected not in name:
            continue
        start = time.monotonic()
        try:
            check()
            print(f"PASS {name} ({time.monotonic() - start:.1f}s)", flush=True)
        except Exception as error:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {name}: {error}", flush=True)
    return 1 if failed else 0

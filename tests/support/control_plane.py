"""A real Kubernetes control plane for tests: Debian's etcd and the kube-apiserver found in
$KUBEBUILDER_ASSETS (controller-runtime envtest's convention), on 127.0.0.1, fresh state in a
temporary folder, RBAC on and ServiceAccount tokens working. Standard library only.

    with ControlPlane(workdir) as cp:
        cp.write_kubeconfig(path)                 # the admin (system:masters)
        cp.kubectl("apply", "-f", CRD)
        token = cp.service_account_token("hotplug-system", "hotplug-operator")
        cp.restart_apiserver(); cp.compact_etcd()

Every wait is a poll with a deadline; every process is stopped by its PID. When the binary is
missing, `require_assets()` fails under CI=true and otherwise exits 77 (skipped) saying where
to get one.
"""

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CRD_FILE = os.path.join(ROOT, "crd", "hotplug.dev_elasticvms.yaml")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
SKIPPED = 77  # ctest's SKIP_RETURN_CODE for these tests

ADMIN_TOKEN = "hotplug-admin-token"
ADMIN_USER = "hotplug-admin"


class ControlPlaneError(RuntimeError):
    pass


def assets_dir():
    """The folder with kube-apiserver (and maybe etcd), or None."""
    folder = os.environ.get("KUBEBUILDER_ASSETS")
    if folder and os.access(os.path.join(folder, "kube-apiserver"), os.X_OK):
        return folder
    return None


def require_assets():
    """Returns the assets folder. Without one: a failure in CI, a loud skip elsewhere."""
    folder = assets_dir()
    if folder:
        return folder
    message = ("no kube-apiserver: set KUBEBUILDER_ASSETS to a folder holding one "
               "(from the project root: ../shared/kubernetes/bin, as .ci/run does; elsewhere "
               "`setup-envtest use 1.26.x` prints one)")
    if os.environ.get("CI") == "true":
        print(f"FAIL {message}", flush=True)
        sys.exit(1)
    print(f"SKIPPED {message}", flush=True)
    sys.exit(SKIPPED)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(args, cwd=None, timeout_s=60):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise ControlPlaneError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def make_pki(folder):
    """A CA, a serving certificate for 127.0.0.1 signed by it, and the ServiceAccount key."""
    os.makedirs(folder, exist_ok=True)
    ssl_cmd = shutil.which("openssl") or "/usr/bin/openssl"
    _run([ssl_cmd, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-subj", "/CN=hotplug-test-ca", "-keyout", "ca.key", "-out", "ca.crt"], cwd=folder)
    _run([ssl_cmd, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
          "-keyout", "server.key", "-out", "server.csr"], cwd=folder)
    with open(os.path.join(folder, "san.ext"), "w", encoding="utf-8") as handle:
        handle.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                     "extendedKeyUsage=serverAuth\n")
    _run([ssl_cmd, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt"],
         cwd=folder)
    _run([ssl_cmd, "genrsa", "-out", "sa.key", "2048"], cwd=folder)
    return folder


class _Process:
    """One server process, its output in a log file, stopped by PID."""

    def __init__(self, name, args, log_path):
        self.name, self.args, self.log_path = name, args, log_path
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)
        return self

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s=15.0):
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)

    def tail(self, count=20):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-count:])
        except FileNotFoundError:
            return ""


class ControlPlane:
    """etcd + kube-apiserver, both on 127.0.0.1 with ports from the kernel."""

    def __init__(self, workdir, apiserver_args=(), start_timeout_s=60.0, etcd_no_fsync=False):
        self.workdir = os.path.join(workdir, "control-plane")
        self.etcd_no_fsync = etcd_no_fsync
        self.apiserver_args = list(apiserver_args)
        self.start_timeout_s = start_timeout_s
        self.assets = require_assets()
        self.etcd = None
        self.apiserver = None
        self.port = None
        self.etcd_port = None
        self.kubeconfig_path = os.path.join(self.workdir, "admin.kubeconfig")
        self._ssl_context = None

    # ---- lifecycle
    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.pki = make_pki(os.path.join(self.workdir, "pki"))
        with open(os.path.join(self.pki, "tokens.csv"), "w", encoding="utf-8") as handle:
            handle.write(f'{ADMIN_TOKEN},{ADMIN_USER},1000,"system:masters"\n')
        self._start_etcd()
        self.port = _free_port()
        self.start_apiserver()
        self.write_kubeconfig(self.kubeconfig_path)
        return self

    def _start_etcd(self):
        etcd = os.path.join(self.assets, "etcd")
        if not os.access(etcd, os.X_OK):
            etcd = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.access(etcd, os.X_OK):
            raise ControlPlaneError("no etcd: apt-get install etcd-server (scripts/setup does)")
        self.etcd_port, peer_port = _free_port(), _free_port()
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        args = [etcd, "--name", "hotplug-test", "--data-dir", os.path.join(self.workdir, "etcd"),
                "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"hotplug-test={peer_url}", "--log-level", "warn"]
        if self.etcd_no_fsync:
            # Benchmarks only, to tell etcd's fsync from the operator as a limit.
            args.append("--unsafe-no-fsync")
        self.etcd = _Process("etcd", args, os.path.join(self.workdir, "etcd.log")).start()
        self._poll(self._etcd_healthy, "etcd to answer /health", self.etcd)

    def start_apiserver(self):
        """Starts (or starts again) kube-apiserver on the same port, etcd and keys."""
        pki = self.pki
        self.apiserver = _Process("kube-apiserver", [
            os.path.join(self.assets, "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.port),
            "--tls-cert-file", os.path.join(pki, "server.crt"),
            "--tls-private-key-file", os.path.join(pki, "server.key"),
            "--client-ca-file", os.path.join(pki, "ca.crt"),
            "--token-auth-file", os.path.join(pki, "tokens.csv"),
            "--authorization-mode", "Node,RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", os.path.join(pki, "sa.key"),
            "--service-account-signing-key-file", os.path.join(pki, "sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--endpoint-reconciler-type", "none",
            "--cert-dir", os.path.join(self.workdir, "apiserver-certs"),
            ] + self.apiserver_args, os.path.join(self.workdir, "kube-apiserver.log")).start()
        self._poll(lambda: self.get("/readyz")[0] == 200, "kube-apiserver /readyz",
                   self.apiserver)
        return self

    def stop_apiserver(self):
        if self.apiserver:
            self.apiserver.stop()

    def kill_apiserver(self, grace_s=0.5):
        """Stops kube-apiserver the quick way, as a crash or a hurried restart would: SIGTERM
        (it closes its listener at once), then SIGKILL after grace_s. A graceful stop takes a
        minute with a watch open: the server holds open watches, sending nothing, until its
        drain timeout (measured on v1.26.1: 60 s)."""
        process = self.apiserver.process if self.apiserver else None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def restart_apiserver(self):
        self.stop_apiserver()
        return self.start_apiserver()

    def stop(self):
        self.stop_apiserver()
        if self.etcd:
            self.etcd.stop()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def logs(self):
        return "".join(f"--- {p.name} (last lines) ---\n{p.tail()}"
                       for p in (self.etcd, self.apiserver) if p)

    def _poll(self, predicate, what, process):
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if not process.alive():
                raise ControlPlaneError(f"{process.name} exited while waiting for {what}:\n"
                                        f"{process.tail()}")
            time.sleep(0.1)
        raise ControlPlaneError(f"timed out after {self.start_timeout_s}s waiting for {what}:\n"
                                f"{process.tail()}")

    # ---- talking to it
    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self):
        return os.path.join(self.pki, "ca.crt")

    def _context(self):
        # One context for every request: building one reads the CA and costs milliseconds.
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=self.ca_file)
        return self._ssl_context

    def request(self, method, path, body=None, token=ADMIN_TOKEN, content_type=None,
                timeout_s=10.0):
        """(status, decoded JSON or text) of one API call; never raises on an HTTP error."""
        data = None
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s,
                                        context=self._context()) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def write_kubeconfig(self, path, token=ADMIN_TOKEN, namespace="default"):
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "envtest", "cluster": {
                "server": self.url, "certificate-authority": self.ca_file}}],
            "users": [{"name": "envtest", "user": {"token": token}}],
            "contexts": [{"name": "envtest", "context": {
                "cluster": "envtest", "user": "envtest", "namespace": namespace}}],
            "current-context": "envtest",
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
        os.chmod(path, 0o600)
        return path

    def kubectl(self, *args, input_text=None, check=True, kubeconfig=None, timeout_s=60):
        env = dict(os.environ, KUBECONFIG=kubeconfig or self.kubeconfig_path,
                   KUBECACHEDIR=os.path.join(self.workdir, "kubecache"))
        result = subprocess.run([KUBECTL] + list(args), env=env, input=input_text,
                                capture_output=True, text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: "
                                    f"{result.stderr.strip()}")
        return result

    def install_crd(self, path=CRD_FILE):
        """kubectl apply of the CRD, then a poll until it is Established."""
        self.kubectl("apply", "-f", path)
        self.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                     "crd/elasticvms.hotplug.dev")

    def service_account_token(self, namespace, name, duration="1h"):
        """A bound token of ServiceAccount namespace/name (TokenRequest, as kubelet gets)."""
        return self.kubectl("-n", namespace, "create", "token", name,
                            f"--duration={duration}").stdout.strip()

    # ---- etcd
    def _etcd_call(self, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.etcd_port}{path}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read())

    def _etcd_healthy(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health",
                                        timeout=2) as response:
                return json.loads(response.read()).get("health") == "true"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def etcd_revision(self):
        key = base64.b64encode(b"/registry").decode()
        return int(self._etcd_call("/v3/kv/range", {"key": key, "limit": 1})
                   ["header"]["revision"])

    def compact_etcd(self):
        """Compacts etcd's history up to now: a watch resumed from an older resourceVersion
        then gets 410 Gone (once the API server's watch cache no longer holds it)."""
        revision = self.etcd_revision()
        self._etcd_call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision


def _decode(raw):
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text

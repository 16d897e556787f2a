#!/usr/bin/env python3
"""Least privilege and secrets, checked on the running binary:

  rbac           the integration flow (two replicas with --leader-elect, apply, patches, a
                 failing step, status conflicts, a failover) against the test API server;
                 every request the operator made (group, resource, subresource, verb,
                 namespace, name) must be allowed by deploy/rbac.yaml + deploy/central/rbac.yaml,
                 and the rules never used are reported;
  secrets        a distinctive bearer token and a client key (HTTPS, client certificates) never
                 appear in the operator's stdout/stderr, even at --log-level=debug;
  tls_verify     against an HTTPS test API server with a self-signed certificate: a kubeconfig
                 without the CA makes the operator refuse (a clear error, no request served);
                 with the CA it works;
  bind_loopback  --metrics-bind-address and --health-probe-bind-address on 127.0.0.1 listen
                 there only (the process's listening sockets, from /proc/<pid>/net/tcp{,6}).

Run: python3 tests/reliability/security_test.py [path/to/hotplug-operator-testing] [-k NAME]
"""

import json
import os
import secrets as random_secrets
import signal
import subprocess
import sys
import time

from reliability_lib import ROOT, Cluster, expect, poll, run_checks, stop_cleanly
import operator_lib
from kubeconfig import write_kubeconfig

RBAC_FILES = [os.path.join(ROOT, "deploy", "rbac.yaml"),
              os.path.join(ROOT, "deploy", "central", "rbac.yaml")]
LEASE_NAMESPACE = "hotplug-system"


# --- RBAC -----------------------------------------------------------------------------

def load_manifests(path):
    """The documents of a YAML file, converted by kubectl offline (no PyYAML here)."""
    result = subprocess.run([operator_lib.KUBECTL, "patch", "--local", "-f", path, "--type",
                             "merge", "-p", "{}", "-o", "json"], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, KUBECONFIG="/dev/null"))
    expect(result.returncode == 0, f"kubectl could not read {path}: {result.stderr}")
    decoder, text, at, docs = json.JSONDecoder(), result.stdout, 0, []
    while at < len(text):
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            break
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs


def rbac_rules():
    """[(rule id, rule, namespace or None for cluster-wide)] from the Roles/ClusterRoles."""
    rules = []
    for path in RBAC_FILES:
        for doc in load_manifests(path):
            if doc.get("kind") not in ("Role", "ClusterRole"):
                continue
            namespace = doc["metadata"].get("namespace") if doc["kind"] == "Role" else None
            for index, rule in enumerate(doc.get("rules", [])):
                rules.append((f"{os.path.relpath(path, ROOT)} {doc['kind']}/"
                              f"{doc['metadata']['name']} rule {index}", rule, namespace))
    return rules


def allowing(rules, request):
    """The (rule id, verb) pairs that allow `request`; empty when none does."""
    resource = request.get("resource") or ""
    if request.get("subresource"):
        resource += "/" + request["subresource"]
    found = []
    for rule_id, rule, namespace in rules:
        if namespace is not None and request.get("namespace") != namespace:
            continue
        if (request.get("group") or "") not in rule.get("apiGroups", []):
            continue
        if resource not in rule.get("resources", []) and "*" not in rule.get("resources", []):
            continue
        if request["verb"] not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
            continue
        names = rule.get("resourceNames")
        if names and request.get("name") not in names:
            continue
        found.append((rule_id, request["verb"]))
    return found


def check_rbac():
    rules = rbac_rules()
    expect(rules, "no RBAC rules found")
    election = ["--leader-elect", f"--leader-elect-namespace={LEASE_NAMESPACE}",
                "--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s",
                "--leader-elect-retry-period=500ms"]
    with Cluster("security-rbac", apiserver_args=["--namespace", LEASE_NAMESPACE]) as cluster:
        cluster.faults(status_conflict_every=3)
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 8, "currentVcpus": 1},
                                         {"name": "web-02", "maximumVcpus": 2, "currentVcpus": 1}])
        common = [f"--fake-domains-file={domains}", "--metrics-bind-address=0"] + election
        first = cluster.operator("replica-a", common)
        poll(lambda: first.logged("leader election: became leader"), "replica-a to lead")
        second = cluster.operator("replica-b", common)
        cluster.apply_vm("web-01", 4)
        cluster.apply_vm("web-02", 5)  # above its maximum: a Warning Event, status
        poll(lambda: cluster.converged("web-01", 4), "web-01 on 4 vCPUs")
        for want in (6, 2):
            cluster.patch_vcpus("web-01", want)
            poll(lambda w=want: cluster.converged("web-01", w), f"web-01 on {want}")
        first.signal(signal.SIGKILL)
        first.wait_exit(10)
        poll(lambda: second.logged("leader election: became leader"), "replica-b to lead", 15)
        cluster.patch_vcpus("web-01", 5)
        poll(lambda: cluster.converged("web-01", 5), "web-01 on 5 after the failover")
        stop_cleanly(second)  # SIGTERM: releases the lease (an update)

        made = [r for r in cluster.requests()
                if (r.get("user_agent") or "").startswith("hotplug-operator")]
        denied, used = [], set()
        for request in made:
            if not request.get("verb") or not request.get("resource"):
                expect(not request.get("resource"), f"unclassified request {request}")
                continue  # discovery and other non-resource URLs: not RBAC-scoped here
            allowed = allowing(rules, request)
            if not allowed:
                denied.append(f"{request['method']} {request['path']} (verb {request['verb']}, "
                              f"namespace {request.get('namespace')!r})")
            used.update(allowed)
        granted = {(rule_id, verb) for rule_id, rule, _ in rules for verb in rule["verbs"]}
        unused = sorted(granted - used)
        print(f"  {len(made)} requests by the operator; {len(used)} of {len(granted)} granted "
              f"(rule, verb) pairs used")
        for rule_id, verb in unused:
            print(f"  never used: {rule_id} verb {verb}")
        expect(not denied, f"{len(denied)} requests RBAC would deny:\n    " +
               "\n    ".join(sorted(set(denied))))


# --- secrets in logs --------------------------------------------------------------------

def make_ca_and_certs(workdir):
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate."""
    def run(*args):
        result = subprocess.run(["openssl"] + list(args), cwd=workdir, capture_output=True,
                                text=True, timeout=60)
        expect(result.returncode == 0, f"openssl {' '.join(args)}: {result.stderr}")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    with open(os.path.join(workdir, "san.ext"), "w", encoding="utf-8") as handle:
        handle.write("subjectAltName=IP:127.0.0.1\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
        "server.key", "-out", "server.csr")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=hotplug-operator", "-keyout",
        "client.key", "-out", "client.csr")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "client.crt")
    return {name: os.path.join(workdir, name) for name in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class HttpsCluster(Cluster):
    """The test API server over HTTPS with a certificate signed by a fresh test CA."""

    def __init__(self, name):
        super().__init__(name)
        self.files = make_ca_and_certs(self.workdir)
        self.api.extra_args += ["--tls-cert", self.files["server.crt"],
                                "--tls-key", self.files["server.key"],
                                "--tls-client-ca", self.files["ca.crt"]]
        self.api.scheme = "https"

    def __enter__(self):
        self.api.start()
        write_kubeconfig(self.kubeconfig, self.api.port, https=True, ca_file=self.files["ca.crt"])
        return self


def key_fragments(path):
    """Lines of the PEM body of a private key: any of them in a log is a leak."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and "-----" not in line]


def check_secrets_not_logged():
    token = "hotplug-secret-" + random_secrets.token_hex(16)
    with HttpsCluster("security-secrets") as cluster:
        secret_config = cluster.path("secret-kubeconfig")
        write_kubeconfig(secret_config, cluster.api.port, token=token, https=True,
                         ca_file=cluster.files["ca.crt"],
                         client_cert=cluster.files["client.crt"],
                         client_key=cluster.files["client.key"])
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 8}])
        operator = operator_lib.Operator(cluster.workdir, "operator", secret_config, [
            "--namespace=default", f"--fake-domains-file={domains}", "--log-level=debug",
            "--metrics-bind-address=0", "--leader-elect"])
        stdout_path = cluster.path("operator.stdout")
        env = dict(os.environ)  # as operator_lib starts it, but keeping stdout too
        env.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(operator_lib.HERE,
                                                                      "lsan.supp"))
        with open(stdout_path, "wb") as stdout, open(operator.log_path, "ab") as stderr:
            operator.process = subprocess.Popen(operator.args, stdout=stdout, stderr=stderr,
                                                stdin=subprocess.DEVNULL, env=env)
        cluster.operators.append(operator)
        cluster.apply_vm("web-01", 3)
        poll(lambda: cluster.converged("web-01", 3), "web-01 on 3 vCPUs over HTTPS")
        cluster.apply_vm("web-01", 9)  # above the maximum: a Warning with a message
        poll(lambda: "ExceedsMaximum" in json.dumps(cluster.get_vm("web-01") or {}),
             "ExceedsMaximum")
        requests = [r for r in cluster.requests()
                    if (r.get("user_agent") or "").startswith("hotplug-operator")]
        expect(requests and all(r.get("authorization") == "bearer" for r in requests),
               "the operator did not send its bearer token")
        expect(any(r.get("client_cert") == "hotplug-operator" for r in requests),
               "the operator did not present its client certificate")
        code = operator.stop()
        expect(code == 0, f"exit code {code} after SIGTERM")
        with open(operator.log_path, encoding="utf-8", errors="replace") as handle:
            logs = handle.read()
        with open(stdout_path, encoding="utf-8", errors="replace") as handle:
            logs += handle.read()
        expect(logs.strip(), "the operator logged nothing")
        expect(token not in logs, "the bearer token appears in the operator's output")
        expect(token[len("hotplug-secret-"):][:12] not in logs, "part of the token was logged")
        leaked = [line for line in key_fragments(cluster.files["client.key"]) if line in logs]
        expect(not leaked, f"{len(leaked)} lines of the client key appear in the output")
        print(f"  {len(logs.splitlines())} output lines at debug level: no token, no key")


# --- TLS verification -------------------------------------------------------------------

def check_tls_verification_on_by_default():
    with HttpsCluster("security-tls") as cluster:
        no_ca = cluster.path("no-ca-kubeconfig")
        write_kubeconfig(no_ca, cluster.api.port, https=True)  # no certificate-authority
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 8}])
        args = ["--namespace=default", f"--fake-domains-file={domains}",
                "--metrics-bind-address=0"]
        refused = operator_lib.Operator(cluster.workdir, "operator-no-ca", no_ca, args).start()
        cluster.operators.append(refused)

        def tls_error():
            for line in refused.lines():
                text = json.dumps(line).lower()
                if line.get("level") in ("warn", "error") and (
                        "certificate" in text or "verify" in text or "ssl" in text or
                        "tls" in text or "handshake" in text):
                    return line
            return None
        error_line = poll(tls_error, "a TLS verification error in the log", 20)
        served = [r for r in cluster.requests()
                  if (r.get("user_agent") or "").startswith("hotplug-operator")]
        expect(not served, f"{len(served)} requests were served without verifying the server")
        expect(refused.probe("/readyz") != 200, "ready although it cannot reach the API")
        print(f"  without the CA: {error_line.get('msg')}: {error_line.get('error', '')[:160]}")
        refused.stop()

        trusted = cluster.operator("operator-with-ca", args)
        cluster.apply_vm("web-01", 3)
        poll(lambda: cluster.converged("web-01", 3), "web-01 on 3 vCPUs with the CA")
        expect(trusted.process.poll() is None, "the operator with the CA died")
        stop_cleanly(trusted)


# --- listening only on loopback -----------------------------------------------------------

def listening_sockets(pid):
    """[(address, port)] of the TCP sockets in LISTEN state that process `pid` owns."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        with open(f"/proc/{pid}/net/{table}", encoding="ascii") as handle:
            next(handle)
            for row in handle:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:
                    continue
                address_hex, port_hex = local.split(":")
                raw = bytes.fromhex(address_hex)
                if width == 8:
                    address = ".".join(str(b) for b in reversed(raw))
                else:  # four little-endian 32-bit words
                    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                    address = ":".join(b"".join(words).hex()[i:i + 4] for i in range(0, 32, 4))
                found.append((address, int(port_hex, 16)))
    return found


def check_bind_loopback_only():
    with Cluster("security-bind") as cluster:
        domains = cluster.write_domains([{"name": "web-01", "maximumVcpus": 8}])
        operator = cluster.operator("operator", [
            "--namespace=default", f"--fake-domains-file={domains}",
            "--metrics-bind-address=127.0.0.1:0"])
        poll(lambda: operator.logged("metrics server listening"), "the metrics server")
        health_port = operator.health_port()
        metrics = operator.logged("metrics server listening")[-1]
        sockets = poll(lambda: listening_sockets(operator.process.pid), "listening sockets")
        time.sleep(0.2)  # both servers logged; read once more to see every listener
        sockets = listening_sockets(operator.process.pid)
        expect(all(address == "127.0.0.1" for address, _ in sockets),
               f"listening beyond loopback: {sockets}")
        ports = {port for _, port in sockets}
        expect(health_port in ports, f"health port {health_port} not among {sockets}")
        metrics_port = int(metrics.get("port", "0"))
        if metrics_port:
            expect(metrics_port in ports, f"metrics port {metrics_port} not among {sockets}")
        else:
            expect(len(ports) >= 2, f"metrics listener not found: {sockets}")
        print(f"  listening: {sorted(sockets)}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("rbac", check_rbac),
        ("secrets_not_logged", check_secrets_not_logged),
        ("tls_verification_on_by_default", check_tls_verification_on_by_default),
        ("bind_loopback_only", check_bind_loopback_only),
    ], sys.argv))

#!/usr/bin/env python3
"""hotplug-operator over HTTPS: it verifies the API server against the kubeconfig's CA, sends
the bearer token and its client certificate, and converges an ElasticVM applied with kubectl.
With a CA that did not sign the server's certificate it refuses to talk (and never reports
ready); `insecure-skip-tls-verify: true` in the kubeconfig turns verification off.

Run: python3 tests/integration/operator_tls_test.py [path/to/hotplug-operator]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from operator_lib import (CRD_FILE, KUBECTL, ApiServerProcess, Operator, expect, poll,
                          run_checks, write_kubeconfig)

TOKEN = "operator-tls-token"


def openssl(tls_dir, *args):
    subprocess.run(["openssl", *args], cwd=tls_dir, check=True, capture_output=True, timeout=60)


def make_pki(tls_dir):
    for ca in ("ca", "other-ca"):
        openssl(tls_dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                f"{ca}.key", "-out", f"{ca}.pem", "-days", "1", "-subj", f"/CN=hotplug-{ca}")
    openssl(tls_dir, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(tls_dir, "san.ext"), "w", encoding="utf-8") as handle:
        handle.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(tls_dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
    openssl(tls_dir, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key",
            "-out", "client.csr", "-subj", "/CN=hotplug-operator")
    openssl(tls_dir, "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.pem", "-days", "1")


def check_https_token_client_cert_and_ca():
    workdir = tempfile.mkdtemp(prefix="hotplug-tls-")
    tls_dir = os.path.join(workdir, "tls")
    os.makedirs(tls_dir)
    make_pki(tls_dir)
    pem = lambda name: os.path.join(tls_dir, name)  # noqa: E731
    api = ApiServerProcess(extra_args=["--tls-cert", pem("server.pem"), "--tls-key",
                                       pem("server.key"), "--tls-client-ca", pem("ca.pem"),
                                       "--token", TOKEN, "--crd", CRD_FILE], scheme="https",
                           log_path=os.path.join(workdir, "apiserver.log"))
    operators = []
    ok = False
    try:
        api.start()
        good = write_kubeconfig(os.path.join(workdir, "good"), api.port, token=TOKEN,
                                https=True, ca_file=pem("ca.pem"),
                                client_cert=pem("client.pem"), client_key=pem("client.key"))
        wrong_ca = write_kubeconfig(os.path.join(workdir, "wrong-ca"), api.port, token=TOKEN,
                                    https=True, ca_file=pem("other-ca.pem"))
        with open(wrong_ca, encoding="utf-8") as handle:
            insecure_doc = json.load(handle)
        del insecure_doc["clusters"][0]["cluster"]["certificate-authority"]
        insecure_doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
        insecure = os.path.join(workdir, "insecure")
        with open(insecure, "w", encoding="utf-8") as handle:
            json.dump(insecure_doc, handle)
        domains = os.path.join(workdir, "domains.yaml")
        with open(domains, "w", encoding="utf-8") as handle:
            json.dump([{"name": "tls-vm", "maximumVcpus": 8, "currentVcpus": 1}], handle)

        env = dict(os.environ, KUBECONFIG=good, HOME=workdir,
                   KUBECACHEDIR=os.path.join(workdir, "kubecache"))
        manifest = {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                    "metadata": {"name": "tls-vm", "namespace": "default"},
                    "spec": {"cpu": {"vcpus": 3}}}
        subprocess.run([KUBECTL, "apply", "-f", "-"], input=json.dumps(manifest), env=env,
                       check=True, capture_output=True, text=True, timeout=60)

        def status():
            result = subprocess.run([KUBECTL, "get", "evm", "tls-vm", "-o", "json"], env=env,
                                    capture_output=True, text=True, timeout=60)
            return json.loads(result.stdout).get("status") if result.returncode == 0 else None

        # A CA that did not sign the server: no connection, never ready.
        refused = Operator(workdir, "wrong-ca", wrong_ca,
                           ["--namespace=default", f"--fake-domains-file={domains}"]).start()
        operators.append(refused)
        poll(lambda: refused.logged("list of elasticvms failed"),
             "the operator with the wrong CA to fail its list")
        expect(refused.probe("/readyz") == 503, "ready without ever listing")
        expect(not status(), "the operator with the wrong CA wrote a status")
        refused.stop()

        # The right CA, the token and a client certificate: converges.
        operator = Operator(workdir, "good", good,
                            ["--namespace=default", f"--fake-domains-file={domains}"]).start()
        operators.append(operator)
        poll(lambda: (status() or {}).get("vcpus", {}).get("current") == 3,
             "tls-vm to converge over HTTPS")
        operator.stop()

        # insecure-skip-tls-verify: talks without a CA (the token still goes along).
        manifest["spec"]["cpu"]["vcpus"] = 5
        subprocess.run([KUBECTL, "apply", "-f", "-"], input=json.dumps(manifest), env=env,
                       check=True, capture_output=True, text=True, timeout=60)
        lax = Operator(workdir, "insecure", insecure,
                       ["--namespace=default", f"--fake-domains-file={domains}"]).start()
        operators.append(lax)
        poll(lambda: (status() or {}).get("vcpus", {}).get("current") == 5,
             "tls-vm to converge with insecure-skip-tls-verify")
        expect(lax.stop() == 0, "exit code")
        ok = True
    finally:
        for operator in operators:
            operator.stop()
        api.stop()
        if ok and not os.environ.get("KEEP_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  work directory kept: {workdir}")
            for operator in operators:
                print(f"  --- {operator.name} ---\n{operator.tail()}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("https_token_client_cert_and_ca", check_https_token_client_cert_and_ca),
    ], sys.argv))

#!/usr/bin/env python3
"""hotplug-operator over HTTPS to a real kube-apiserver: it verifies the server against the
kubeconfig's CA and authenticates with a client certificate alone (no token: the real server
checks the certificate against its --client-ca-file and RBAC authorises its CN, which the
audit log records), then converges an ElasticVM applied with kubectl. With a CA that did not
sign the server's certificate it refuses to talk (and never reports ready);
`insecure-skip-tls-verify: true` in the kubeconfig turns verification off (with the
ServiceAccount token). Bearer tokens are what every other integration test uses.

Run: python3 tests/integration/operator_tls_test.py [path/to/hotplug-operator-testing]
"""

import json
import os
import subprocess
import sys

from operator_lib import Cluster, expect, poll, require_assets, run_checks

CERT_USER = "hotplug-cert-operator"


def openssl(folder, *args):
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def make_client_pki(folder, server_pki):
    """A CA the server does not know, and a client certificate (CN=CERT_USER) signed by the
    server's own client CA."""
    os.makedirs(folder, exist_ok=True)
    openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key",
            "-out", "other-ca.pem", "-days", "1", "-subj", "/CN=hotplug-other-ca")
    openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key",
            "-out", "client.csr", "-subj", f"/CN={CERT_USER}")
    with open(os.path.join(folder, "client.ext"), "w", encoding="utf-8") as handle:
        handle.write("extendedKeyUsage=clientAuth\n")
    openssl(folder, "x509", "-req", "-in", "client.csr",
            "-CA", os.path.join(server_pki, "ca.crt"), "-CAkey", os.path.join(server_pki, "ca.key"),
            "-CAcreateserial", "-out", "client.pem", "-days", "1", "-extfile", "client.ext")


def variant(cluster, name, change):
    """A copy of the operator's kubeconfig with `change(document)` applied."""
    with open(cluster.operator_kubeconfig, encoding="utf-8") as handle:
        document = json.load(handle)
    change(document)
    path = cluster.path(f"{name}.kubeconfig")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    return path


def check_https_ca_client_cert_and_insecure():
    with Cluster("tls") as cluster:
        pki = cluster.path("pki")
        make_client_pki(pki, cluster.plane.pki)
        cluster.kubectl("create", "clusterrolebinding", f"{cluster.namespace}-cert",
                        "--clusterrole=hotplug-operator", f"--user={CERT_USER}")
        poll(lambda: cluster.kubectl("auth", "can-i", "watch", "elasticvms.hotplug.dev",
                                     f"--as={CERT_USER}", check=False).stdout.strip() == "yes",
             "RBAC to let the certificate's user watch", 20, 0.1)

        def client_cert_only(document):
            user = document["users"][0]["user"]
            del user["token"]
            user["client-certificate"] = os.path.join(pki, "client.pem")
            user["client-key"] = os.path.join(pki, "client.key")

        def wrong_ca(document):
            document["clusters"][0]["cluster"]["certificate-authority"] = \
                os.path.join(pki, "other-ca.pem")

        def insecure(document):
            del document["clusters"][0]["cluster"]["certificate-authority"]
            document["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True

        domains = cluster.write_domains([{"name": "tls-vm", "maximumVcpus": 8,
                                          "currentVcpus": 1}])
        args = [f"--namespace={cluster.namespace}", f"--fake-domains-file={domains}",
                f"--fake-call-log={cluster.path('calls.log')}"]
        cluster.apply_vm("tls-vm", 3)

        # A CA that did not sign the server: no connection, never ready, nothing written.
        refused = cluster.operator("wrong-ca", args, variant(cluster, "wrong-ca", wrong_ca))
        poll(lambda: refused.logged("list of elasticvms failed"),
             "the operator with the wrong CA to fail its list")
        expect(refused.probe("/readyz") == 503, "ready without ever listing")
        expect(not cluster.get_vm("tls-vm").get("status"), "a status written without trust")
        expect(not cluster.operator_requests(),
               "the server saw a request of the operator that did not trust it")
        refused.stop()

        # The right CA and a client certificate alone: the server authenticates it.
        operator = cluster.operator("cert", args, variant(cluster, "cert", client_cert_only))
        poll(lambda: cluster.converged("tls-vm", 3), "tls-vm to converge over HTTPS")
        users = {e["user"]["username"] for e in cluster.operator_requests()}
        expect(users == {CERT_USER}, f"the server saw the operator as {users}")
        expect(operator.stop() == 0, "exit code")

        # insecure-skip-tls-verify: talks without a CA (the token still goes along).
        cluster.patch_vcpus("tls-vm", 5)
        lax = cluster.operator("insecure", args, variant(cluster, "insecure", insecure))
        poll(lambda: cluster.converged("tls-vm", 5),
             "tls-vm to converge with insecure-skip-tls-verify")
        expect(lax.stop() == 0, "exit code")
        accounts = {e["user"]["username"] for e in cluster.operator_requests()} - {CERT_USER}
        expect(accounts == {"system:serviceaccount:hotplug-system:hotplug-operator"},
               f"with insecure-skip-tls-verify the server saw {accounts}")


if __name__ == "__main__":
    require_assets()
    sys.exit(run_checks([
        ("https_ca_client_cert_and_insecure", check_https_ca_client_cert_and_insecure),
    ], sys.argv))

#!/usr/bin/env python3
"""Writes a kubeconfig that points kubectl (or the operator) at the test API server.

Usage: kubeconfig.py --port N --out FILE [--token T] [--https --ca CA.pem]
       [--client-cert C.pem --client-key K.pem]
JSON is valid YAML, so the file is written as JSON with the standard library only.
"""

import argparse
import json
import os
import sys


def kubeconfig(port, token=None, https=False, ca_file=None, client_cert=None,
               client_key=None, host="127.0.0.1", namespace="default"):
    """Returns the kubeconfig as a dict; one cluster, one user, one current context."""
    cluster = {"server": f"{'https' if https else 'http'}://{host}:{port}"}
    if ca_file:
        cluster["certificate-authority"] = os.path.abspath(ca_file)
    # kubectl sends credentials only over HTTPS, and over HTTPS with none it prompts for a
    # username on stdin; the test server accepts any token, so there is always one.
    user = {"token": token or "hotplug-test-token"}
    if client_cert:
        user["client-certificate"] = os.path.abspath(client_cert)
        user["client-key"] = os.path.abspath(client_key)
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "hotplug-test", "cluster": cluster}],
        "users": [{"name": "hotplug-test", "user": user}],
        "contexts": [{"name": "hotplug-test", "context": {
            "cluster": "hotplug-test", "user": "hotplug-test", "namespace": namespace}}],
        "current-context": "hotplug-test",
    }


def write_kubeconfig(path, port, **kwargs):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(kubeconfig(port, **kwargs), handle, indent=2)
    os.chmod(path, 0o600)
    return path


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--token")
    parser.add_argument("--https", action="store_true")
    parser.add_argument("--ca")
    parser.add_argument("--client-cert")
    parser.add_argument("--client-key")
    parser.add_argument("--namespace", default="default")
    args = parser.parse_args(argv)
    write_kubeconfig(args.out, args.port, token=args.token, https=args.https, ca_file=args.ca,
                     client_cert=args.client_cert, client_key=args.client_key,
                     namespace=args.namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

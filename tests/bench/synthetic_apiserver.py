#!/usr/bin/env python3
"""A list/watch-only API server for the memory benchmark: it serves N ElasticVMs generated
from their index (nothing stored per object but its resourceVersion), so 100k objects cost
it little, unlike tests/apiserver/fake_apiserver.py which stores and validates everything.

Each object looks as it would in a real cluster after `kubectl apply` and a reconcile: labels,
the last-applied-configuration annotation, managedFields, a spec, and a status with three
conditions. Serves:

  GET  /apis/hotplug.dev/v1alpha1/[namespaces/default/]elasticvms?limit=&continue=   list
  GET  ...?watch=1&resourceVersion=RV[&timeoutSeconds=S]   chunked watch, replays after RV
  POST /_bench/count {"count": N}    objects 0..N-1 exist from now on: ADDED / DELETED events
  GET  /_bench/object                one object's JSON (to report its size)

    synthetic_apiserver.py [--port 0]     prints "LISTENING <port>" once it accepts
"""

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PREFIX = "/apis/hotplug.dev/v1alpha1"
NAMESPACE = "default"
BOOKMARK_SECONDS = 5


def object_dict(index, resource_version):
    name = f"vm-{index:06d}"
    labels = {"app": "web", "hotplug.dev/node": "host-a"}
    spec = {"domain": name, "nodeName": "host-a",
            "cpu": {"vcpus": 2, "guestOnline": "auto"},
            "memory": {"size": "2Gi", "method": "auto"},
            "persist": True, "suspend": False}
    applied = {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
               "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
               "spec": spec}
    when = "2026-11-25T12:00:00Z"
    condition = lambda kind: {"type": kind, "status": "True", "reason": "Synced",
                              "message": "", "lastTransitionTime": when,
                              "observedGeneration": 1}
    return {
        "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
        "metadata": {
            "name": name, "namespace": NAMESPACE,
            "uid": f"0b5e3c1a-7d2f-4e61-9a3b-{index:012d}",
            "resourceVersion": str(resource_version), "generation": 1,
            "creationTimestamp": when, "labels": labels,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                            json.dumps(applied, separators=(",", ":")) + "\n"},
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update",
                 "apiVersion": "hotplug.dev/v1alpha1", "time": when, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {}, "f:labels": {}},
                              "f:spec": {"f:cpu": {}, "f:memory": {}, "f:persist": {}}}},
                {"manager": "hotplug-operator", "operation": "Update",
                 "apiVersion": "hotplug.dev/v1alpha1", "time": when, "fieldsType": "FieldsV1",
                 "subresource": "status", "fieldsV1": {"f:status": {}}}],
        },
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "vcpus": {"desired": 2, "current": 2, "maximum": 8, "enabled": "0-1",
                      "online": "0-1"},
            "memory": {"desired": "2Gi", "current": "2Gi", "maximum": "4Gi",
                       "method": "virtio-mem"},
            "conditions": [condition("Ready"), condition("VCPUsSynced"),
                           condition("MemorySynced")],
        },
    }


class Store:
    def __init__(self):
        self.cond = threading.Condition()
        # Guarded by cond.
        self.resource_version = 1
        self.added_at = []   # resourceVersion at which object i was added; len = count
        self.history = []    # (resourceVersion, type, index), in order
        self.stopping = False

    def set_count(self, count):
        with self.cond:
            while len(self.added_at) < count:
                self.resource_version += 1
                self.history.append((self.resource_version, "ADDED", len(self.added_at)))
                self.added_at.append(self.resource_version)
            while len(self.added_at) > count:
                self.resource_version += 1
                index = len(self.added_at) - 1
                self.history.append((self.resource_version, "DELETED", index))
                self.added_at.pop()
            self.cond.notify_all()
            return self.resource_version


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None  # set by main

    def log_message(self, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/_bench/count":
            rv = self.store.set_count(int(body["count"]))
            return self.send_json(200, {"resourceVersion": str(rv)})
        self.send_json(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/_bench/object":
            return self.send_json(200, object_dict(0, 2))
        if url.path not in (PREFIX + "/elasticvms",
                            PREFIX + f"/namespaces/{NAMESPACE}/elasticvms"):
            return self.send_json(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
        if query.get("watch") in ("1", "true"):
            return self.watch(query)
        limit = int(query.get("limit") or 0)
        start = int(query.get("continue") or 0)
        with self.store.cond:
            rv = self.store.resource_version
            added_at = list(self.store.added_at)
        end = len(added_at) if limit <= 0 else min(len(added_at), start + limit)
        items = [object_dict(i, added_at[i]) for i in range(start, end)]
        metadata = {"resourceVersion": str(rv)}
        if end < len(added_at):
            metadata["continue"] = str(end)
        self.send_json(200, {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVMList",
                             "metadata": metadata, "items": items})

    def write_chunk(self, lines):
        data = "".join(lines).encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, query):
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        store = self.store
        with store.cond:
            # history is in resourceVersion order: find the first entry after `since`.
            cursor = len(store.history)
            while cursor > 0 and store.history[cursor - 1][0] > since:
                cursor -= 1
        next_bookmark = time.monotonic() + BOOKMARK_SECONDS
        try:
            while True:
                with store.cond:
                    while (cursor >= len(store.history) and not store.stopping
                           and time.monotonic() < min(deadline, next_bookmark)):
                        store.cond.wait(min(deadline, next_bookmark) - time.monotonic())
                    batch = store.history[cursor:cursor + 500]
                    cursor += len(batch)
                    rv = store.resource_version
                    stopping = store.stopping
                if batch:
                    lines = []
                    for event_rv, kind, index in batch:
                        obj = object_dict(index, event_rv)
                        lines.append(json.dumps({"type": kind, "object": obj}) + "\n")
                    self.write_chunk(lines)
                    continue
                if stopping or time.monotonic() >= deadline:
                    break
                bookmark = {"type": "BOOKMARK", "object": {
                    "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                    "metadata": {"resourceVersion": str(rv)}}}
                self.write_chunk([json.dumps(bookmark) + "\n"])
                next_bookmark = time.monotonic() + BOOKMARK_SECONDS
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    Handler.store = Store()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        with Handler.store.cond:
            Handler.store.stopping = True
            Handler.store.cond.notify_all()
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

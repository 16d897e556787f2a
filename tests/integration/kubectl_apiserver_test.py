#!/usr/bin/env python3
"""The test API server (tests/apiserver/) behaves like kube for the real kubectl v1.32 and for
raw HTTP clients: discovery, OpenAPI-driven validation, printer columns, watch, status
subresource, optimistic concurrency, 410 Expired, auth, TLS and every fault-injection mode.

Run: python3 tests/integration/kubectl_apiserver_test.py [-k substring] [--keep]
Each check is a rule; the run fails if any rule does not hold. Every wait polls with a
deadline; every process started here is stopped by its PID.
"""

import argparse
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
APISERVER_DIR = os.path.join(ROOT, "tests", "apiserver")
sys.path.insert(0, APISERVER_DIR)

import check_lib  # noqa: E402
from check_lib import expect, stop_process  # noqa: E402
from kubeconfig import write_kubeconfig  # noqa: E402
from launch import ApiServerProcess  # noqa: E402

CRD_FILE = os.path.join(ROOT, "crd", "hotplug.dev_elasticvms.yaml")
VM_FILE = os.path.join(APISERVER_DIR, "testdata", "web-01.yaml")
EVM_PATH = "/apis/hotplug.dev/v1alpha1/namespaces/default/elasticvms"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def poll(predicate, what, timeout_s=10.0, interval_s=0.05):
    """check_lib.poll with this suite's shorter default deadline."""
    return check_lib.poll(predicate, what, timeout_s, interval_s)


# ----------------------------------------------------------------------------------------
# Clients.


class Http:
    """Raw HTTP(S) to the server: returns (status, decoded JSON or text, headers)."""

    def __init__(self, port, token=None, tls_context=None):
        self.port = port
        self.token = token
        self.tls_context = tls_context

    def connection(self, timeout_s=10.0):
        if self.tls_context is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout_s,
                                               context=self.tls_context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)

    def headers(self, content_type=None, accept="application/json", token=True):
        headers = {"Accept": accept, "User-Agent": "kubectl-apiserver-test/1"}
        if content_type:
            headers["Content-Type"] = content_type
        if token and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method, path, body=None, content_type="application/json",
                accept="application/json", token=True):
        connection = self.connection()
        try:
            data = None if body is None else (body if isinstance(body, bytes)
                                               else json.dumps(body).encode())
            connection.request(method, path, body=data,
                               headers=self.headers(content_type if data else None, accept,
                                                    token))
            response = connection.getresponse()
            raw = response.read()
            try:
                decoded = json.loads(raw) if raw else None
            except ValueError:
                decoded = raw.decode(errors="replace")
            return response.status, decoded, dict(response.getheaders())
        finally:
            connection.close()

    def watch(self, path, timeout_s=10.0):
        return WatchStream(self, path, timeout_s)


class StreamBroken(Exception):
    """The server dropped the connection before the chunked stream's final chunk."""


class WatchStream:
    """A watch on its own connection. The chunked framing is decoded here, not by
    http.client (which hides an abrupt close as a clean end), so a test can tell them apart."""

    def __init__(self, client, path, timeout_s):
        self.connection = client.connection(timeout_s)
        self.connection.request("GET", path, headers=client.headers())
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.raw = self.response.fp
        self.buffer = b""
        self.ended = False
        if not self.response.chunked:
            self.buffer = self.response.read()
            self.ended = True

    def _read_chunk(self):
        size_line = self.raw.readline()
        if not size_line:
            raise StreamBroken("connection closed before the final chunk")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            self.raw.readline()
            self.ended = True
            return
        data = self.raw.read(size + 2)
        if len(data) < size + 2:
            raise StreamBroken("connection closed inside a chunk")
        self.buffer += data[:size]

    def next_event(self):
        """The next event, None at a clean end; raises StreamBroken or a timeout."""
        while b"\n" not in self.buffer:
            if self.ended:
                return None
            self._read_chunk()
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def events_until_end(self, limit=1000):
        events = []
        while len(events) < limit:
            event = self.next_event()
            if event is None:
                break
            events.append(event)
        return events

    def close(self):
        self.connection.close()


class Kubectl:
    def __init__(self, kubeconfig, cache_dir):
        self.env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECACHEDIR": cache_dir,
                    "HOME": os.path.dirname(cache_dir)}

    def run(self, *args, stdin=None, timeout_s=30.0):
        result = subprocess.run([KUBECTL, *args], input=stdin if stdin is not None else "",
                                capture_output=True, text=True, env=self.env,
                                timeout=timeout_s)
        return result.returncode, result.stdout, result.stderr

    def ok(self, *args, **kwargs):
        code, out, err = self.run(*args, **kwargs)
        expect(code == 0, f"kubectl {' '.join(args)} failed ({code}): {err.strip()}")
        return out

    def background(self, args, output_path):
        """A long-running kubectl (e.g. get -w) writing to output_path."""
        handle = open(output_path, "w", encoding="utf-8")
        process = subprocess.Popen([KUBECTL, *args], stdin=subprocess.DEVNULL, stdout=handle,
                                   stderr=subprocess.STDOUT, env=self.env, text=True)
        handle.close()
        return process


def read_file(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


# ----------------------------------------------------------------------------------------
# The checks share one server and one kubectl; they run in order (later ones build on the
# objects earlier ones made) and each one states a rule.


class Suite:
    def __init__(self, workdir):
        self.workdir = workdir
        self.server = ApiServerProcess(
            extra_args=["--bookmark-interval", "0.5"],
            log_path=os.path.join(workdir, "apiserver.log")).start()
        self.http = Http(self.server.port)
        kubeconfig = write_kubeconfig(os.path.join(workdir, "kubeconfig"), self.server.port)
        self.kubectl = Kubectl(kubeconfig, os.path.join(workdir, "kube-cache"))
        self.watcher = None
        self.watch_output = os.path.join(workdir, "watch.out")
        self.started = []   # other processes, stopped at the end

    def close(self):
        stop_process(self.watcher)
        for process in self.started:
            stop_process(process)
        self.server.stop()

    def faults(self, **changes):
        return self.server.admin("POST", "/_admin/faults", changes)

    def create_vm(self, name, labels=None, vcpus=2):
        status, body, _ = self.http.request("POST", EVM_PATH, {
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"domain": name, "cpu": {"vcpus": vcpus}}})
        expect(status == 201, f"create {name}: {status} {body}")
        return body

    # -- kubectl as a user ---------------------------------------------------------------

    def check_kubectl_applies_the_crd_with_validation_on(self):
        code, out, err = self.kubectl.run("apply", "-f", CRD_FILE)
        expect(code == 0, f"kubectl apply of the CRD failed: {err}")
        expect("customresourcedefinition.apiextensions.k8s.io/elasticvms.hotplug.dev created"
               in out, out)
        log = self.server.admin("GET", "/_admin/requests")["items"]
        posts = [e for e in log if e["verb"] == "create" and
                 e["resource"] == "customresourcedefinitions"]
        expect(posts and posts[-1]["query"].get("fieldValidation") == "Strict",
               "kubectl did not use server-side field validation: "
               f"{[e['path'] for e in log]}")
        established = self.kubectl.ok(
            "get", "crd", "elasticvms.hotplug.dev",
            "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}")
        expect(established == "True", f"CRD not Established: {established!r}")

    def check_kubectl_applies_an_elasticvm(self):
        out = self.kubectl.ok("apply", "-f", VM_FILE)
        expect("elasticvm.hotplug.dev/web-01 created" in out, out)
        out = self.kubectl.ok("apply", "-f", VM_FILE)
        expect("elasticvm.hotplug.dev/web-01 unchanged" in out, out)

    def check_get_shows_the_printer_columns(self):
        for resource in ("elasticvms", "evm", "elasticvm.hotplug.dev"):
            out = self.kubectl.ok("get", resource)
            lines = out.splitlines()
            expect(lines[0].split() == ["NAME", "DOMAIN", "NODE", "VCPUS", "CURRENT",
                                        "RECOMMENDED", "MEMORY", "READY", "AGE"],
                   f"kubectl get {resource} header: {lines[0]!r}")
            expect(lines[1].split()[:4] == ["web-01", "web-01", "host-a", "2"],
                   f"kubectl get {resource} row: {lines[1]!r}")
            expect(lines[1].split()[-1].endswith("s"), f"AGE cell: {lines[1]!r}")

    def check_get_yaml_has_server_fields_and_defaults(self):
        out = self.kubectl.ok("get", "evm", "web-01", "-o", "yaml")
        for needle in ("kind: ElasticVM", "apiVersion: hotplug.dev/v1alpha1", "uid: ",
                       "creationTimestamp: ", "generation: 1", "resourceVersion: ",
                       "guestOnline: auto", "namespace: default"):
            expect(needle in out, f"`{needle}` missing from kubectl get -o yaml:\n{out}")

    def check_explain_reads_the_schema_from_openapi_v3(self):
        out = self.kubectl.ok("explain", "evm.spec.cpu.vcpus")
        expect("Desired number of enabled vCPUs" in out, out)

    def check_get_watch_streams_a_patch(self):
        self.watcher = self.kubectl.background(
            ["get", "evm", "-w", "--output-watch-events"], self.watch_output)
        poll(lambda: "web-01" in read_file(self.watch_output), "kubectl -w initial row")
        self.kubectl.ok("patch", "evm", "web-01", "--type=merge",
                        "-p", '{"spec":{"cpu":{"vcpus":3}}}')
        rows = poll(lambda: [line.split() for line in read_file(self.watch_output)
                             .splitlines() if line.split()[:1] == ["MODIFIED"]],
                    "kubectl -w to print the MODIFIED row")
        expect(rows[0][1:5] == ["web-01", "web-01", "host-a", "3"], f"watch row {rows}")

    def check_spec_patch_bumps_generation(self):
        generation = self.kubectl.ok("get", "evm", "web-01", "-o",
                                     "jsonpath={.metadata.generation}")
        expect(generation == "2", f"generation after a spec patch: {generation}")

    def check_status_patch_sets_status_without_bumping_generation(self):
        status = {"status": {
            "observedGeneration": 2, "vcpus": {"desired": 3, "current": 3, "maximum": 8},
            "memory": {"current": "2Gi"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced",
                            "message": "in sync", "lastTransitionTime":
                            "2026-01-01T00:00:00Z"}]}}
        self.kubectl.ok("patch", "evm", "web-01", "--subresource=status", "--type=merge",
                        "-p", json.dumps(status))
        obj = json.loads(self.kubectl.ok("get", "evm", "web-01", "-o", "json"))
        expect(obj["metadata"]["generation"] == 2, f"generation: {obj['metadata']}")
        expect(obj["status"]["vcpus"]["current"] == 3, f"status: {obj.get('status')}")
        row = self.kubectl.ok("get", "evm", "web-01", "--no-headers").split()
        expect(row[4:7] == ["3", "2Gi", "True"], f"CURRENT/MEMORY/READY cells: {row}")

    def check_kubectl_wait_describe_and_server_side_apply(self):
        out = self.kubectl.ok("wait", "--for=condition=Ready", "evm/web-01", "--timeout=10s")
        expect("condition met" in out, out)
        uid = self.kubectl.ok("get", "evm", "web-01", "-o", "jsonpath={.metadata.uid}")
        status, body, _ = self.http.request("POST", "/api/v1/namespaces/default/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-01.plug"},
            "involvedObject": {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                               "name": "web-01", "namespace": "default", "uid": uid},
            "reason": "VCPUPlugged", "message": "vcpu 2 plugged", "type": "Normal",
            "count": 1, "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:00Z", "source": {"component": "test"}})
        expect(status == 201, f"create event: {status} {body}")
        out = self.kubectl.ok("describe", "evm", "web-01")
        expect("VCPUPlugged" in out and "vcpu 2 plugged" in out, f"describe: {out}")
        manifest = read_file(VM_FILE).replace("vcpus: 2", "vcpus: 3")
        out = self.kubectl.ok("apply", "--server-side", "-f", "-", stdin=manifest)
        expect("serverside-applied" in out, out)
        generation = self.kubectl.ok("get", "evm", "web-01", "-o",
                                     "jsonpath={.metadata.generation}")
        expect(generation == "2", f"an unchanged server-side apply bumped generation: "
               f"{generation}")

    def check_server_dry_run_changes_nothing(self):
        before = json.loads(self.kubectl.ok("get", "evm", "web-01", "-o", "json"))
        manifest = read_file(VM_FILE).replace("vcpus: 2", "vcpus: 6")
        out = self.kubectl.ok("apply", "--dry-run=server", "-f", "-", stdin=manifest)
        expect("(server dry run)" in out, out)
        code, out, err = self.kubectl.run("diff", "-f", "-", stdin=manifest)
        expect(code == 1 and "+    vcpus: 6" in out, f"kubectl diff: {code} {out} {err}")
        out = self.kubectl.ok("delete", "evm", "web-01", "--dry-run=server")
        expect("(server dry run)" in out, out)
        after = json.loads(self.kubectl.ok("get", "evm", "web-01", "-o", "json"))
        expect(after == before, f"a dry run changed the object:\n{before}\n{after}")

    def check_main_resource_writes_ignore_status(self):
        self.kubectl.ok("patch", "evm", "web-01", "--type=merge",
                        "-p", '{"status":{"vcpus":{"current":99}}}')
        current = self.kubectl.ok("get", "evm", "web-01", "-o",
                                  "jsonpath={.status.vcpus.current}")
        expect(current == "3", f"a main-resource patch changed status: {current}")

    def check_stale_resource_version_update_conflicts(self):
        stale = os.path.join(self.workdir, "stale.json")
        with open(stale, "w", encoding="utf-8") as handle:
            handle.write(self.kubectl.ok("get", "evm", "web-01", "-o", "json"))
        self.kubectl.ok("label", "evm", "web-01", "touched=yes")
        code, _, err = self.kubectl.run("replace", "-f", stale)
        expect(code != 0 and "Conflict" in err and "has been modified" in err,
               f"replace with a stale resourceVersion: {code} {err}")

    def check_invalid_objects_are_rejected_with_field_messages(self):
        cases = [  # (description, spec override, expected fragments)
            ("vcpus: 0", {"cpu": {"vcpus": 0}},
             ["spec.cpu.vcpus", "greater than or equal to 1"]),
            ('vcpus: "four"', {"cpu": {"vcpus": "four"}},
             ["spec.cpu.vcpus", "must be of type integer"]),
            ("memory method foo", {"memory": {"method": "foo"}},
             ["spec.memory.method", 'Unsupported value: "foo"']),
            ("bad quantity", {"memory": {"size": "lots"}}, ["spec.memory.size", "should match"]),
            ("unknown field", {"bogus": True}, ['unknown field "spec.bogus"']),
        ]
        for description, spec, fragments in cases:
            manifest = {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                        "metadata": {"name": "invalid-vm"},
                        "spec": {"domain": "x", **spec}}
            code, _, err = self.kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))
            expect(code != 0, f"{description}: kubectl apply accepted it")
            for fragment in fragments:
                expect(fragment in err, f"{description}: `{fragment}` not in {err!r}")
        code, _, _ = self.kubectl.run("get", "evm", "invalid-vm")
        expect(code != 0, "an invalid object was stored")

    def check_strategic_merge_on_a_custom_resource_is_415(self):
        code, _, err = self.kubectl.run("patch", "evm", "web-01", "-p",
                                        '{"spec":{"cpu":{"vcpus":4}}}')
        expect(code != 0 and "application/strategic-merge-patch+json is not supported" in err,
               f"default (strategic) patch of a CR: {code} {err}")

    def check_delete_removes_it_and_the_watch_sees_deleted(self):
        out = self.kubectl.ok("delete", "evm", "web-01")
        expect('elasticvm.hotplug.dev "web-01" deleted' in out, out)
        poll(lambda: any(line.split()[:2] == ["DELETED", "web-01"]
                         for line in read_file(self.watch_output).splitlines()),
             "kubectl -w to print DELETED")
        code, _, err = self.kubectl.run("get", "evm", "web-01")
        expect(code != 0 and "NotFound" in err, f"get after delete: {code} {err}")
        stop_process(self.watcher)

    # -- raw HTTP semantics --------------------------------------------------------------

    def check_names_are_validated(self):
        status, body, _ = self.http.request("POST", EVM_PATH, {
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": "Web_01"}, "spec": {"cpu": {"vcpus": 1}}})
        expect(status == 422 and "RFC 1123" in body["message"], f"{status} {body}")

    def check_errors_are_status_objects(self):
        status, body, _ = self.http.request("GET", EVM_PATH + "/missing")
        expect(status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
               and body["code"] == 404, f"GET missing: {status} {body}")
        self.create_vm("dup")
        status, body, _ = self.http.request("POST", EVM_PATH, {
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": "dup"}, "spec": {"cpu": {"vcpus": 1}}})
        expect(status == 409 and body["reason"] == "AlreadyExists", f"{status} {body}")
        current = self.http.request("GET", EVM_PATH + "/dup")[1]
        current["metadata"]["resourceVersion"] = "1"
        status, body, _ = self.http.request("PUT", EVM_PATH + "/dup", current)
        expect(status == 409 and body["reason"] == "Conflict" and body["kind"] == "Status"
               and "the object has been modified" in body["message"], f"{status} {body}")
        status, body, _ = self.http.request("POST", EVM_PATH, {
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": "zero"}, "spec": {"cpu": {"vcpus": 0}}})
        expect(status == 422 and body["reason"] == "Invalid" and
               body["details"]["causes"][0]["field"] == "spec.cpu.vcpus", f"{status} {body}")

    def check_status_put_changes_only_status_and_keeps_generation(self):
        vm = self.http.request("GET", EVM_PATH + "/dup")[1]
        vm["spec"]["cpu"]["vcpus"] = 7
        vm["status"] = {"vcpus": {"current": 1}}
        status, body, _ = self.http.request("PUT", EVM_PATH + "/dup/status", vm)
        expect(status == 200, f"PUT status: {status} {body}")
        expect(body["spec"]["cpu"]["vcpus"] == 2 and body["status"]["vcpus"]["current"] == 1
               and body["metadata"]["generation"] == 1, f"after PUT status: {body}")
        del vm["metadata"]["resourceVersion"]
        status, body, _ = self.http.request("PUT", EVM_PATH + "/dup/status", vm)
        expect(status == 422 and "must be specified for an update" in body["message"],
               f"PUT of a custom resource without resourceVersion: {status} {body}")
        status, body, _ = self.http.request(
            "PATCH", EVM_PATH + "/dup", [{"op": "replace", "path": "/spec/cpu/vcpus",
                                         "value": 5}], "application/json-patch+json")
        expect(status == 200 and body["metadata"]["generation"] == 2 and
               body["status"]["vcpus"]["current"] == 1, f"json patch: {status} {body}")

    def check_list_selectors_and_resource_version(self):
        self.create_vm("on-a", {"hotplug.dev/node": "host-a"})
        self.create_vm("on-b", {"hotplug.dev/node": "host-b"})
        cases = [("labelSelector=hotplug.dev/node%3Dhost-a", ["on-a"]),
                 ("labelSelector=hotplug.dev/node%20in%20(host-a,host-b)", ["on-a", "on-b"]),
                 ("labelSelector=hotplug.dev/node!%3Dhost-a", ["dup", "on-b"]),
                 ("fieldSelector=metadata.name%3Don-b", ["on-b"])]
        for query, names in cases:
            status, body, _ = self.http.request("GET", f"{EVM_PATH}?{query}")
            got = sorted(item["metadata"]["name"] for item in body["items"])
            expect(status == 200 and got == names, f"{query}: {got}, want {names}")
            expect(int(body["metadata"]["resourceVersion"]) > 0, f"list RV: {body['metadata']}")
        status, body, _ = self.http.request(
            "GET", "/apis/hotplug.dev/v1alpha1/elasticvms?labelSelector=hotplug.dev/node")
        expect(status == 200 and len(body["items"]) == 2, f"cluster-wide list: {body}")

    def check_list_pages_with_limit_and_continue(self):
        status, first, _ = self.http.request("GET", f"{EVM_PATH}?limit=2")
        expect(status == 200 and len(first["items"]) == 2 and first["metadata"]["continue"]
               and first["metadata"]["remainingItemCount"] == 1, f"page 1: {first}")
        status, second, _ = self.http.request(
            "GET", f"{EVM_PATH}?limit=2&continue={first['metadata']['continue']}")
        names = [i["metadata"]["name"] for i in first["items"] + second["items"]]
        expect(names == ["dup", "on-a", "on-b"] and "continue" not in second["metadata"],
               f"pages: {names} {second['metadata']}")

    def check_finalizers_hold_deletion_until_removed(self):
        rv = self.create_vm("held")["metadata"]["resourceVersion"]
        status, held, _ = self.http.request(
            "PATCH", EVM_PATH + "/held", {"metadata": {"finalizers": ["hotplug.dev/test"]}},
            "application/merge-patch+json")
        status, body, _ = self.http.request("DELETE", EVM_PATH + "/held")
        expect(status == 200 and body["metadata"].get("deletionTimestamp"),
               f"delete with a finalizer: {status} {body}")
        expect(self.http.request("GET", EVM_PATH + "/held")[0] == 200, "deleted too early")
        self.http.request("PATCH", EVM_PATH + "/held", {"metadata": {"finalizers": None}},
                          "application/merge-patch+json")
        expect(self.http.request("GET", EVM_PATH + "/held")[0] == 404, "not deleted")
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}&timeoutSeconds=1"
                                 "&fieldSelector=metadata.name%3Dheld")
        types = [e["type"] for e in stream.events_until_end()]
        stream.close()
        expect(types == ["MODIFIED", "MODIFIED", "DELETED"], f"finalizer events: {types}")

    def check_watch_list_ends_initial_events_with_a_bookmark(self):
        stream = self.http.watch(f"{EVM_PATH}?watch=1&sendInitialEvents=true"
                                 "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
                                 "&timeoutSeconds=1")
        events = stream.events_until_end()
        stream.close()
        kinds = [e["type"] for e in events]
        expect(kinds[:4] == ["ADDED", "ADDED", "ADDED", "BOOKMARK"] and
               events[3]["object"]["metadata"]["annotations"] ==
               {"k8s.io/initial-events-end": "true"}, f"watch-list: {kinds}")

    def check_watch_replays_from_a_resource_version_and_honours_timeout(self):
        rv = self.http.request("GET", EVM_PATH)[1]["metadata"]["resourceVersion"]
        self.http.request("PATCH", EVM_PATH + "/on-a", {"spec": {"cpu": {"vcpus": 3}}},
                          "application/merge-patch+json")
        self.http.request("DELETE", EVM_PATH + "/on-b")
        started = time.monotonic()
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}&timeoutSeconds=1")
        events = stream.events_until_end()
        stream.close()
        elapsed = time.monotonic() - started
        types = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
        expect(types == [("MODIFIED", "on-a"), ("DELETED", "on-b")], f"replay: {types}")
        expect(0.8 <= elapsed < 5, f"timeoutSeconds=1 watch lasted {elapsed:.2f}s")

    def check_concurrent_watchers_each_see_every_event_in_order(self):
        rv = self.http.request("GET", EVM_PATH)[1]["metadata"]["resourceVersion"]
        writes, seen = 200, {}

        def watch(index):
            stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}"
                                     "&timeoutSeconds=20", timeout_s=25)
            versions = []
            while len(versions) < writes:
                event = stream.next_event()
                if event is None:
                    break
                versions.append(int(event["object"]["metadata"]["resourceVersion"]))
            stream.close()
            seen[index] = versions
        watchers = [threading.Thread(target=watch, args=(i,), name=f"watch-{i}")
                    for i in range(4)]
        for thread in watchers:
            thread.start()
        connection = self.http.connection()
        for vcpus in range(writes):
            connection.request("PATCH", EVM_PATH + "/on-a",
                               json.dumps({"spec": {"cpu": {"vcpus": vcpus % 64 + 1}}}),
                               self.http.headers("application/merge-patch+json"))
            response = connection.getresponse()
            response.read()
            expect(response.status == 200, f"patch {vcpus}: {response.status}")
        connection.close()
        for thread in watchers:
            thread.join(timeout=30)
        for index, versions in sorted(seen.items()):
            expect(len(versions) == writes and versions == sorted(set(versions)),
                   f"watcher {index}: {len(versions)} events, ordered="
                   f"{versions == sorted(versions)}")
        expect(len(seen) == 4, f"only {len(seen)} watchers finished")

    def check_watch_with_label_selector_sees_objects_enter_and_leave(self):
        rv = self.http.request("GET", EVM_PATH)[1]["metadata"]["resourceVersion"]
        self.http.request("PATCH", EVM_PATH + "/dup",
                          {"metadata": {"labels": {"hotplug.dev/node": "host-a"}}},
                          "application/merge-patch+json")
        self.http.request("PATCH", EVM_PATH + "/dup",
                          {"metadata": {"labels": {"hotplug.dev/node": "host-c"}}},
                          "application/merge-patch+json")
        stream = self.http.watch(f"{EVM_PATH}?watch=true&resourceVersion={rv}"
                                 "&labelSelector=hotplug.dev/node%3Dhost-a&timeoutSeconds=1")
        types = [(e["type"], e["object"]["metadata"]["name"])
                 for e in stream.events_until_end()]
        stream.close()
        expect(types == [("ADDED", "dup"), ("DELETED", "dup")], f"selector watch: {types}")

    def check_watch_without_resource_version_starts_with_added(self):
        stream = self.http.watch(f"{EVM_PATH}?watch=1&timeoutSeconds=1")
        names = sorted(e["object"]["metadata"]["name"] for e in stream.events_until_end()
                       if e["type"] == "ADDED")
        stream.close()
        expect(names == ["dup", "on-a"], f"initial ADDED events: {names}")

    def check_watch_sends_periodic_bookmarks(self):
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion=1"
                                 "&allowWatchBookmarks=true&timeoutSeconds=2")
        events = stream.events_until_end()
        stream.close()
        bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
        expect(len(bookmarks) >= 2, f"bookmarks in 2s at 0.5s interval: {len(bookmarks)}")
        expect(bookmarks[-1]["object"]["kind"] == "ElasticVM" and
               int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) > 1,
               f"bookmark object: {bookmarks[-1]}")
        stream = self.http.watch(f"{EVM_PATH}?watch=1&timeoutSeconds=1")
        expect(not [e for e in stream.events_until_end() if e["type"] == "BOOKMARK"],
               "bookmarks sent to a watch that did not allow them")
        stream.close()

    def check_watch_from_a_compacted_resource_version_gets_410(self):
        rv = self.http.request("GET", EVM_PATH)[1]["metadata"]["resourceVersion"]
        self.http.request("PATCH", EVM_PATH + "/on-a", {"spec": {"cpu": {"vcpus": 4}}},
                          "application/merge-patch+json")
        self.server.admin("POST", "/_admin/compact")
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}")
        events = stream.events_until_end()
        stream.close()
        expect(stream.status == 200 and len(events) == 1 and events[0]["type"] == "ERROR",
               f"watch from a compacted RV: {stream.status} {events}")
        error = events[0]["object"]
        expect(error["kind"] == "Status" and error["code"] == 410 and
               error["reason"] == "Expired" and "too old resource version" in error["message"],
               f"410 status: {error}")

    def check_request_log_records_verbs_agents_and_tokens(self):
        self.http.request("GET", EVM_PATH + "/on-a", token=False)
        Http(self.server.port, token="secret").request("GET", EVM_PATH + "/on-a")
        log = self.server.admin("GET", "/_admin/requests")["items"]
        verbs = {e["verb"] for e in log if e.get("resource") == "elasticvms"}
        expect({"get", "list", "watch", "create", "update", "patch", "delete"} <= verbs,
               f"verbs logged: {verbs}")
        expect(any(e["user_agent"].startswith("kubectl/") for e in log), "kubectl UA missing")
        last_two = [e["authorization"] for e in log if e["path"] == EVM_PATH + "/on-a"][-2:]
        expect(last_two == ["none", "bearer"], f"authorization recorded: {last_two}")
        expect(all({"method", "path", "query", "verb", "user_agent", "code"} <= set(e)
                   for e in log), "log entries lack fields")

    # -- fault injection -----------------------------------------------------------------

    def check_fault_watch_closes_after_n_events(self):
        self.faults(reset=True, watch_close_after_events=2)
        rv = self.http.request("GET", EVM_PATH)[1]["metadata"]["resourceVersion"]
        for vcpus in (5, 6, 7):
            self.http.request("PATCH", EVM_PATH + "/on-a", {"spec": {"cpu": {"vcpus": vcpus}}},
                              "application/merge-patch+json")
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}&timeoutSeconds=30")
        started = time.monotonic()
        events = stream.events_until_end()
        stream.close()
        expect(len(events) == 2 and time.monotonic() - started < 5,
               f"watch with close-after-2: {len(events)} events")
        self.faults(watch_close_abrupt=True)
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}&timeoutSeconds=30")
        broken = False
        try:
            stream.events_until_end()
        except StreamBroken:
            broken = True
        stream.close()
        expect(broken, "an abrupt close ended the chunked stream cleanly")
        self.faults(reset=True)

    def check_fault_410_on_every_watch_reconnect(self):
        rv = self.http.request("GET", EVM_PATH)[1]["metadata"]["resourceVersion"]
        self.faults(reset=True, watch_gone_on_reconnect=True, watch_gone_mode="event")
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}")
        events = stream.events_until_end()
        stream.close()
        expect(len(events) == 1 and events[0]["type"] == "ERROR" and
               events[0]["object"]["code"] == 410, f"event mode: {events}")
        self.faults(watch_gone_mode="http")
        status, body, _ = self.http.request("GET", f"{EVM_PATH}?watch=1&resourceVersion={rv}")
        expect(status == 410 and body["code"] == 410, f"http mode: {status} {body}")
        stream = self.http.watch(f"{EVM_PATH}?watch=1&timeoutSeconds=1")
        expect(stream.status == 200 and stream.events_until_end(),
               "a fresh watch (no resourceVersion) must still work")
        stream.close()
        self.faults(reset=True, watch_gone_on_reconnect=True, watch_gone_count=1)
        codes = []
        for _ in range(2):
            stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}"
                                     "&timeoutSeconds=1")
            events = stream.events_until_end()
            stream.close()
            codes.append(events[0]["object"].get("code") if events else None)
        expect(codes == [410, None], f"watch_gone_count=1: {codes}")
        self.faults(reset=True)

    def check_fault_conflict_on_every_other_status_write(self):
        self.faults(reset=True, status_conflict_every=2)
        codes = []
        for current in range(4):
            status, _, _ = self.http.request(
                "PATCH", EVM_PATH + "/on-a/status", {"status": {"vcpus": {"current": current}}},
                "application/merge-patch+json")
            codes.append(status)
        expect(codes == [200, 409, 200, 409], f"status write codes: {codes}")
        status, _, _ = self.http.request("PATCH", EVM_PATH + "/on-a",
                                         {"metadata": {"labels": {"x": "y"}}},
                                         "application/merge-patch+json")
        expect(status == 200, f"a main-resource write must not be hit: {status}")
        self.faults(reset=True)

    def check_fault_500_for_n_requests_and_for_t_seconds_on_a_prefix(self):
        self.faults(reset=True, errors=[{"prefix": "/apis/hotplug.dev", "count": 2}])
        codes = [self.http.request("GET", EVM_PATH)[0] for _ in range(3)]
        expect(codes == [500, 500, 200], f"count rule: {codes}")
        self.faults(errors=[{"prefix": "/apis/hotplug.dev", "seconds": 1.0, "code": 503}])
        expect(self.http.request("GET", EVM_PATH)[0] == 503, "seconds rule not active")
        expect(self.http.request("GET", "/api/v1/namespaces/default")[0] == 200,
               "seconds rule hit another prefix")
        poll(lambda: self.http.request("GET", EVM_PATH)[0] == 200,
             "the 1s error window to end", timeout_s=5)
        self.faults(reset=True, errors=[{"prefix": "/apis/hotplug.dev", "count": 1,
                                         "methods": ["POST"]}])
        connection = self.http.connection()   # keep-alive: the failed POST's body is drained
        connection.request("POST", EVM_PATH, json.dumps({"metadata": {"name": "x"}}),
                           self.http.headers("application/json"))
        first = connection.getresponse()
        first.read()
        connection.request("GET", EVM_PATH + "/on-a", headers=self.http.headers())
        second = connection.getresponse()
        body = json.loads(second.read())
        connection.close()
        expect(first.status == 500 and second.status == 200 and
               body["metadata"]["name"] == "on-a", f"keep-alive after a fault: "
               f"{first.status} {second.status}")
        self.faults(reset=True, errors=[{"prefix": "/apis/hotplug.dev", "count": 5,
                                         "verbs": ["watch"], "code": 503}])
        expect(self.http.request("GET", EVM_PATH)[0] == 200, "a watch-only rule hit a list")
        expect(self.http.request("GET", f"{EVM_PATH}?watch=1&timeoutSeconds=1")[0] == 503,
               "a watch-only rule missed a watch")
        self.faults(reset=True)

    def check_fault_delay(self):
        self.faults(reset=True, delay_ms=400, delay_prefix="/apis/hotplug.dev")
        started = time.monotonic()
        self.http.request("GET", EVM_PATH)
        slow = time.monotonic() - started
        started = time.monotonic()
        self.http.request("GET", "/api/v1/namespaces/default")
        fast = time.monotonic() - started
        expect(slow >= 0.4 and fast < 0.3, f"delay: slow={slow:.3f}s fast={fast:.3f}s")
        self.faults(reset=True)

    def check_validation_switch_lets_bad_objects_through(self):
        self.faults(validation=False)
        status, body, _ = self.http.request("POST", EVM_PATH, {
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": "raw-bad"},
            "spec": {"cpu": {"vcpus": "four"}, "memory": {"method": "foo"}}})
        expect(status == 201 and body["spec"]["cpu"]["vcpus"] == "four", f"{status} {body}")
        self.faults(validation=True)
        status, _, _ = self.http.request("POST", EVM_PATH, {
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": "raw-bad-2"}, "spec": {"cpu": {"vcpus": "four"}}})
        expect(status == 422, f"validation back on: {status}")

    def check_core_events_leases_and_namespaces(self):
        status, body, _ = self.http.request("POST", "/api/v1/namespaces/default/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-01.1"},
            "involvedObject": {"kind": "ElasticVM", "name": "web-01"},
            "reason": "PartialFailure", "message": "vcpu 3 failed", "type": "Warning"})
        expect(status == 201, f"create event: {status} {body}")
        out = self.kubectl.ok("get", "events", "-o", "jsonpath={.items[*].reason}")
        expect("PartialFailure" in out, f"kubectl get events: {out}")
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
        status, lease, _ = self.http.request("POST", lease_path, {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "hotplug-operator"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})
        expect(status == 201, f"create lease: {status} {lease}")
        stale = json.loads(json.dumps(lease))
        lease["spec"]["holderIdentity"] = "b"
        status, _, _ = self.http.request("PUT", f"{lease_path}/hotplug-operator", lease)
        expect(status == 200, f"renew lease: {status}")
        status, body, _ = self.http.request("PUT", f"{lease_path}/hotplug-operator", stale)
        expect(status == 409 and body["reason"] == "Conflict", f"stale lease: {status}")
        status, body, _ = self.http.request("GET", "/api/v1/namespaces/default")
        expect(status == 200 and body["status"]["phase"] == "Active", f"ns: {status} {body}")
        status, body, _ = self.http.request("POST", "/api/v1/namespaces/nowhere/events", {
            "metadata": {"name": "e"}})
        expect(status == 404 and "namespaces \"nowhere\" not found" in body["message"],
               f"event in a missing namespace: {status} {body}")

    def check_deleting_the_crd_deletes_its_objects(self):
        rv = self.http.request("GET", EVM_PATH)[1]["metadata"]["resourceVersion"]
        out = self.kubectl.ok("delete", "crd", "elasticvms.hotplug.dev")
        expect("deleted" in out, out)
        status, body, _ = self.http.request("GET", EVM_PATH)
        expect(status == 200 and body["items"] == [], f"objects left: {body}")
        stream = self.http.watch(f"{EVM_PATH}?watch=1&resourceVersion={rv}&timeoutSeconds=1")
        deleted = [e for e in stream.events_until_end() if e["type"] == "DELETED"]
        stream.close()
        expect(len(deleted) >= 3, f"DELETED events for the CRD's objects: {len(deleted)}")

    # -- auth, TLS, shutdown (their own servers) -------------------------------------------

    def check_token_is_required_when_configured(self):
        with ApiServerProcess(extra_args=["--token", "s3cret"]) as server:
            for token, want in ((None, 401), ("wrong", 401), ("s3cret", 200)):
                status, body, _ = Http(server.port, token=token).request(
                    "GET", "/api/v1/namespaces/default")
                expect(status == want, f"token {token!r}: {status} {body}")
                if want == 401:
                    expect(body["reason"] == "Unauthorized", f"401 body: {body}")
            expect(Http(server.port).request("GET", "/_admin/healthz")[0] == 200,
                   "the admin API must not need the token")

    def check_https_with_a_test_ca(self):
        tls_dir = os.path.join(self.workdir, "tls")
        os.makedirs(tls_dir)

        def openssl(*args):
            subprocess.run(["openssl", *args], cwd=tls_dir, check=True, capture_output=True,
                           timeout=60)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "1", "-subj", "/CN=hotplug-test-ca")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
                "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        with open(os.path.join(tls_dir, "san.ext"), "w", encoding="utf-8") as handle:
            handle.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key",
                "-out", "client.csr", "-subj", "/CN=hotplug-operator")
        openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "client.pem", "-days", "1")
        with ApiServerProcess(extra_args=[
                "--tls-cert", os.path.join(tls_dir, "server.pem"),
                "--tls-key", os.path.join(tls_dir, "server.key"),
                "--tls-client-ca", os.path.join(tls_dir, "ca.pem"),
                "--token", "tls-token", "--crd", CRD_FILE], scheme="https") as server:
            context = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.pem"))
            status, body, _ = Http(server.port, token="tls-token",
                                   tls_context=context).request("GET", "/version")
            expect(status == 200 and body["minor"] == "32", f"HTTPS /version: {status}")
            context.load_cert_chain(os.path.join(tls_dir, "client.pem"),
                                    os.path.join(tls_dir, "client.key"))
            Http(server.port, token="tls-token", tls_context=context).request(
                "GET", "/api/v1/namespaces/default")
            client_certs = [e["client_cert"] for e in
                            server.admin("GET", "/_admin/requests")["items"]]
            expect(client_certs == [None, "hotplug-operator"],
                   f"client certificates recorded: {client_certs}")
            # kubectl sends a bearer token only over HTTPS (client-go drops it over HTTP).
            kubectls = {}
            for token in ("tls-token", "wrong"):
                config = write_kubeconfig(os.path.join(self.workdir, f"kubeconfig-{token}"),
                                          server.port, https=True, token=token,
                                          ca_file=os.path.join(tls_dir, "ca.pem"))
                kubectls[token] = Kubectl(config, os.path.join(self.workdir, f"cache-{token}"))
            out = kubectls["tls-token"].ok("apply", "-f", VM_FILE)
            expect("created" in out, out)
            header = kubectls["tls-token"].ok("get", "evm").splitlines()[0].split()
            expect(header[:3] == ["NAME", "DOMAIN", "NODE"], f"--crd at start: {header}")
            code, _, err = kubectls["wrong"].run("get", "evm")
            expect(code != 0 and ("Unauthorized" in err or "logged in" in err),
                   f"kubectl with a wrong token: {code} {err}")

    def check_sigterm_stops_cleanly_with_an_open_watch(self):
        server = ApiServerProcess().start()
        try:
            stream = Http(server.port).watch(f"{EVM_PATH}?watch=1", timeout_s=10)
            started = time.monotonic()
            code = server.stop(timeout_s=10)
            expect(code == 0 and time.monotonic() - started < 5,
                   f"SIGTERM: exit code {code} after {time.monotonic() - started:.2f}s")
            expect(stream.events_until_end() == [], "watch did not end with the server")
            stream.close()
        finally:
            server.stop()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="run only checks whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if not os.path.exists(KUBECTL):
        print("kubectl not found", file=sys.stderr)
        return 1
    workdir = tempfile.mkdtemp(prefix="kubectl-apiserver-test-")
    suite = Suite(workdir)
    checks = [name for name in Suite.__dict__ if name.startswith("check_") and args.k in name]
    failures = []
    try:
        for name in checks:
            started = time.monotonic()
            try:
                getattr(suite, name)()
                print(f"PASS {name[6:]} ({time.monotonic() - started:.2f}s)", flush=True)
            except Exception:  # one failing rule must not hide the others
                failures.append(name)
                print(f"FAIL {name[6:]}\n{traceback.format_exc()}", flush=True)
    finally:
        suite.close()
        if args.keep or failures:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(checks) - len(failures)}/{len(checks)} checks passed")
    return 1 if failures or not checks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

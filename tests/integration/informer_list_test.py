#!/usr/bin/env python3
"""How the operator LISTs, as client-go's reflector does, seen in the test API server's request
log: the first LIST asks for resourceVersion=0 (the watch cache of a real API server answers it
whole, without an etcd read); when the server refuses the version asked for, the operator lists
again at once without one (a quorum read) and gets ready; a relist after a watch's 410 asks for
the last version seen, without a limit (so the watch cache, not an exact etcd read, answers);
an expired continue token starts the LIST over; short quiet watches are not backed off; a LIST
whose answer is slow to start (as kube-apiserver's at 100,000 objects) is waited for, not asked
again, and does not hold up a SIGTERM. (tests/bench measures what resourceVersion=0 saves on
the real server.)

Run: python3 tests/integration/informer_list_test.py [path/to/hotplug-operator-testing]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "apiserver"))

from check_lib import CheckFailed, expect, http_get, operator_binary, poll, stop_process  # noqa
from kubeconfig import write_kubeconfig  # noqa: E402
from launch import ApiServerProcess  # noqa: E402

CRD = os.path.join(ROOT, "crd", "hotplug.dev_elasticvms.yaml")
VMS = "/apis/hotplug.dev/v1alpha1/namespaces/default/elasticvms"


class Setup:
    def __init__(self, workdir, faults=None):
        self.workdir = workdir
        self.api = ApiServerProcess(extra_args=["--crd", CRD],
                                    log_path=os.path.join(workdir, "apiserver.log")).start()
        if faults:
            self.api.admin("POST", "/_admin/faults", faults)
        self.kubeconfig = write_kubeconfig(os.path.join(workdir, "kubeconfig"), self.api.port)
        domains = os.path.join(workdir, "domains.json")
        with open(domains, "w", encoding="utf-8") as handle:
            json.dump([{"name": "vm-a", "maximumVcpus": 8, "currentVcpus": 1}], handle)
        self.log_path = os.path.join(workdir, "operator.log")
        self.operator = None
        self.domains = domains

    def start_operator(self, extra_args=()):
        with open(self.log_path, "ab") as log:
            self.operator = subprocess.Popen(
                [operator_binary(), f"--kubeconfig={self.kubeconfig}", "--namespace=default",
                 "--health-probe-bind-address=127.0.0.1:0",
                 "--metrics-bind-address=127.0.0.1:0", "--hypervisor=fake",
                 f"--fake-domains-file={self.domains}", "--log-level=debug", *extra_args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                env=dict(os.environ, LSAN_OPTIONS=f"suppressions={HERE}/lsan.supp"))

    def logged(self, message):
        found = []
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("msg") == message:
                    found.append(line)
        return found

    def ready(self):
        ports = self.logged("health server listening")
        return ports and http_get(f"http://127.0.0.1:{ports[-1]['port']}/readyz")[0] == 200

    def list_queries(self):
        """The query of each LIST of ElasticVMs, in order."""
        queries = []
        for entry in self.api.admin("GET", "/_admin/requests?since=0")["items"]:
            query = entry.get("query") or {}
            if entry.get("method") == "GET" and entry.get("path") == VMS and \
                    not query.get("watch"):
                queries.append(query)
        return queries

    def watches(self):
        return [entry for entry in self.api.admin("GET", "/_admin/requests?since=0")["items"]
                if entry.get("path") == VMS and (entry.get("query") or {}).get("watch")]

    def lists(self):
        """The resourceVersion each LIST of ElasticVMs asked for ('' = none), in order."""
        return [query.get("resourceVersion", "") for query in self.list_queries()]

    def apply(self, vcpus):
        self.apply_list([{"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                          "metadata": {"name": "vm-a", "namespace": "default"},
                          "spec": {"cpu": {"vcpus": vcpus}}}])

    def apply_list(self, items):
        stream = "\n".join(json.dumps(item) for item in items)  # a JSON stream
        env = dict(os.environ, KUBECONFIG=self.kubeconfig,
                   KUBECACHEDIR=os.path.join(self.workdir, "kubecache"))
        result = subprocess.run([shutil.which("kubectl") or "kubectl", "apply", "-f", "-"],
                                input=stream, env=env, capture_output=True,
                                text=True, timeout=60)
        expect(result.returncode == 0, f"kubectl apply: {result.stderr}")

    def close(self):
        stop_process(self.operator, 30)
        self.api.stop()


def run(name, faults, body):
    workdir = tempfile.mkdtemp(prefix=f"hotplug-informer-{name}-")
    setup = Setup(workdir, faults)
    try:
        body(setup)
        print(f"PASS {name}", flush=True)
        return True
    except CheckFailed as error:
        print(f"FAIL {name}: {error}\n  lists asked: {setup.lists()}\n  work dir: {workdir}",
              flush=True)
        return False
    finally:
        setup.close()


def first_list_from_the_watch_cache(setup):
    setup.apply(2)
    setup.start_operator()
    poll(setup.ready, "/readyz after the first LIST", 30)
    expect(setup.lists()[:1] == ["0"], f"the first LIST asked for {setup.lists()[:1]}, not 0")


def first_list_is_reconciled_while_it_arrives(setup):
    # The answer's second half comes 6 s after its first (list_stall_ms): objects of the first
    # half are reconciled, their statuses written, while the LIST is still arriving, as a
    # restart over 10,000 objects reconciles during the seconds their LIST takes. (600: the
    # first half is more than the HTTP client's 64 KiB reads.)
    setup.apply_list([{"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                       "metadata": {"name": f"vm-{i:03d}", "namespace": "default"},
                       "spec": {"cpu": {"vcpus": 2}}} for i in range(600)])
    setup.start_operator()

    def written_during_the_list():
        entries = setup.api.admin("GET", "/_admin/requests?since=0")["items"]
        lists = [e for e in entries if e.get("method") == "GET" and e.get("path") == VMS and
                 not (e.get("query") or {}).get("watch")]
        written = [e for e in entries if e.get("path", "").endswith("/status") and
                   e.get("method") in ("PATCH", "PUT")]
        if lists and lists[0].get("finished"):
            raise CheckFailed("the first LIST finished before any status was written: "
                              f"{len(written)} writes")
        return written
    poll(written_during_the_list, "a status written while the LIST is stalled", 5, 0.05)
    expect(not setup.ready(), "/readyz before the whole LIST arrived")
    poll(setup.ready, "/readyz after the whole LIST", 30)
    listed = setup.logged("listed elasticvms")
    expect(listed and listed[0]["objects"] == "600", f"the first LIST logged {listed}")


def refused_version_falls_back_to_a_quorum_list(setup):
    setup.apply(2)
    setup.start_operator()
    poll(setup.ready, "/readyz after the fallback LIST", 30)
    asked = setup.lists()
    expect(asked[:2] == ["0", ""], f"LISTs asked for {asked}: want 0, then none (quorum)")
    poll(lambda: setup.logged("list at a resourceVersion refused; listing from etcd"),
         "the log line that says why the operator listed from etcd", 5)


def relist_after_gone_asks_for_the_last_version_seen(setup):
    setup.apply(2)
    setup.start_operator()   # its first watch gets 410 (the faults below): a relist
    relists = poll(lambda: setup.lists()[1:], "a relist after the watch's 410", 30)
    expect(relists[0] not in ("", "0"),
           f"the relist asked for resourceVersion {relists[0]!r}, not the last one seen")
    # With a limit, kube-apiserver reads that version from etcd exactly (the version just
    # refused, after its restart); without one its watch cache answers, as the reflector asks.
    limits = [q.get("limit") for q in setup.list_queries()[1:]]
    expect(limits[0] is None, f"the relist at a version asked for limit={limits[0]}")
    poll(setup.ready, "/readyz", 30)


def expired_continue_token_lists_again_from_the_start(setup):
    # 501 objects: a quorum LIST (the version is refused) takes two pages of 500, and the
    # second page's continue token has expired once. The operator must start over, not take
    # the half-read list, or the empty one, for the whole truth.
    items = [{"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
              "metadata": {"name": f"vm-{i:03d}", "namespace": "default"},
              "spec": {"cpu": {"vcpus": 1}, "suspend": True}} for i in range(501)]
    setup.apply_list(items)
    setup.start_operator()
    poll(setup.ready, "/readyz", 60)
    listed = setup.logged("listed elasticvms")
    expect(listed and listed[0]["objects"] == "501",
           f"the first completed LIST holds {listed[0]['objects'] if listed else None} "
           f"objects, not 501")


def short_quiet_watches_do_not_back_off(setup):
    # --watch-timeout=1s and nothing changes: each watch ends cleanly, empty, after 1 s. That
    # is a healthy watch, so the next starts at once; counted as a failure, the gaps would
    # double up to 30 s (0.4, 0.6, 1.1, 1.3, 2.6, 5.5 s ... were seen) and a change would
    # wait that long.
    setup.start_operator(["--watch-timeout=1s"])
    poll(setup.ready, "/readyz", 30)
    poll(lambda: len(setup.watches()) >= 10, "ten 1-second watches within 14 s", 14, 0.2)


def a_list_slow_to_start_is_waited_for(setup):
    # The answer's status line comes 17 s after the request (delay_ms), as kube-apiserver's
    # does at 100,000 objects: it sends nothing of a LIST from its watch cache before the
    # whole answer is encoded. With the 15 s timeout of a write, each attempt was dropped and
    # asked again, three times in one 70 s restart; the LIST must be waited for, once.
    setup.apply(1)
    setup.api.admin("POST", "/_admin/faults", {"delay_ms": 17000, "delay_prefix": VMS})
    setup.start_operator()
    poll(setup.ready, "/readyz after the one slow LIST", 50, 0.2)
    failed = setup.logged("list of elasticvms failed")
    expect(not failed, f"the slow LIST was given up: {[f.get('error') for f in failed]}")
    expect(setup.lists() == ["0"], f"LISTs asked for {setup.lists()}: want one, at 0")


def a_slow_list_does_not_hold_up_a_stop(setup):
    # SIGTERM while the LIST waits for its answer (the 75 s a 100,000-object LIST may take):
    # the operator cancels the request and exits, well before the 30 s answer would come.
    setup.apply(1)
    setup.api.admin("POST", "/_admin/faults", {"delay_ms": 30000, "delay_prefix": VMS})
    setup.start_operator()
    poll(lambda: setup.lists() == ["0"], "the operator's LIST reaches the server", 20, 0.1)
    setup.operator.terminate()
    try:
        code = setup.operator.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise CheckFailed("still running 10 s after SIGTERM: the LIST in flight held it up")
    expect(code == 0, f"exit code {code} after SIGTERM, want 0")
    failed = setup.logged("list of elasticvms failed")
    expect(not failed, f"a cancelled LIST was logged as a failure: {failed}")


def main():
    results = [
        run("first_list_from_the_watch_cache", None, first_list_from_the_watch_cache),
        run("first_list_is_reconciled_while_it_arrives", {"list_stall_ms": 6000},
            first_list_is_reconciled_while_it_arrives),
        run("refused_version_falls_back_to_a_quorum_list",
            {"list_refuse_resource_version": True}, refused_version_falls_back_to_a_quorum_list),
        run("relist_after_gone_asks_for_the_last_version_seen",
            {"watch_gone_on_reconnect": True, "watch_gone_count": 1},
            relist_after_gone_asks_for_the_last_version_seen),
        run("expired_continue_token_lists_again_from_the_start",
            {"list_refuse_resource_version": True, "list_continue_gone_count": 1},
            expired_continue_token_lists_again_from_the_start),
        run("short_quiet_watches_do_not_back_off", None, short_quiet_watches_do_not_back_off),
        run("a_list_slow_to_start_is_waited_for", None, a_list_slow_to_start_is_waited_for),
        run("a_slow_list_does_not_hold_up_a_stop", None, a_slow_list_does_not_hold_up_a_stop),
    ]
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

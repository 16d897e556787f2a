#!/usr/bin/env python3
"""The chart and the examples against a REAL kube-apiserver (tests/support/control_plane.py:
etcd + kube-apiserver on 127.0.0.1, RBAC on): `helm install` (every object accepted, the CRD
from crds/ Established), `helm upgrade` with changed values, `helm uninstall`; the examples
applied with strict field validation; the built binary run with the chart's args and the
chart's ServiceAccount. Each test class starts its own control plane (about 3 s).

Needs KUBEBUILDER_ASSETS (a folder holding kube-apiserver): without it the run fails under
CI=true and otherwise exits 77 (skipped), saying so. Run a group with

    KUBEBUILDER_ASSETS=../shared/kubernetes/bin \\
      python3 tests/chart/chart_server_test.py [--helm helm] [--binary B] [Group ...]
"""

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
import chart_lib  # noqa: E402
from chart_lib import (ALL_TOGGLES, CHART, CRD, DEPLOY,  # noqa: E402
                       EXPECTED_AGENT_LEASE_RULES, EXPECTED_CENTRAL_CLUSTER_RULES,
                       EXPECTED_CLUSTER_RULES, NAMESPACE, RELEASE, REPO, Tools, arg_name,
                       container, kinds, of_component, one, template, yaml_objects)

sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import control_plane  # noqa: E402

LSAN_SUPPRESSIONS = os.path.join(REPO, "tests", "integration", "lsan.supp")
CRD_NAME = "elasticvms.hotplug.dev"
AGENT_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
AGENT_LEASES = f"{NAMESPACE}-agents"  # the chart's default for agentLeases.namespace
CENTRAL_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-central"


def poll(predicate, what, timeout_s=30.0, interval_s=0.1):
    """predicate()'s first truthy value within the deadline, else an AssertionError."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def monitoring_crd(kind, plural):
    """A minimal CRD of the Prometheus Operator's kind (any spec accepted): enough for the
    chart's ServiceMonitor and PrometheusRule to be stored. Made here, never shipped."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"kind": kind, "listKind": kind + "List", "plural": plural,
                      "singular": kind.lower()},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }


class Cluster:
    """A fresh control plane, with helm and kubectl pointed at it through an admin
    kubeconfig."""

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="server-", dir=Tools.home)
        self.control_plane = control_plane.ControlPlane(self.workdir)
        try:
            self.control_plane.start()
        except BaseException:
            self.control_plane.stop()
            raise
        self.kubeconfig = self.control_plane.write_kubeconfig(
            os.path.join(self.workdir, "admin.kubeconfig"))

    def stop(self):
        self.control_plane.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def helm(self, *args, check=True):
        result = chart_lib.helm(*args, kubeconfig=self.kubeconfig)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr}\n"
                                 f"{self.control_plane.logs()}")
        return result

    def kubectl(self, *args, input_text=None, check=True):
        return self.control_plane.kubectl(*args, input_text=input_text, check=check,
                                          kubeconfig=self.kubeconfig)

    def get(self, *args):
        """The object (or List) `kubectl get ARGS -o json` prints."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def live_objects(self, manifest, ignore_not_found=False):
        """The server's copy of every object of a YAML manifest."""
        args = ["get", "-f", "-", "-o", "json"]
        if ignore_not_found:
            args.append("--ignore-not-found")
        text = self.kubectl(*args, input_text=manifest).stdout.strip()
        if not text:
            return []
        listed = json.loads(text)
        return listed["items"] if listed.get("kind") == "List" else [listed]

    def apply_json(self, *objects):
        return self.kubectl("apply", "-f", "-", input_text=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": list(objects)}))

    def ensure_namespace(self, name):
        self.apply_json({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def install_monitoring_crds(self):
        crds = [monitoring_crd("ServiceMonitor", "servicemonitors"),
                monitoring_crd("PrometheusRule", "prometheusrules")]
        self.apply_json(*crds)
        for crd in crds:
            self.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                         "crd/" + crd["metadata"]["name"])
        # Served (in discovery) once Established; helm maps kinds through discovery.
        poll(lambda: self.control_plane.get("/apis/monitoring.coreos.com/v1")[0] == 200,
             "monitoring.coreos.com/v1 in discovery")

    def install(self, *values_files, release=RELEASE, namespace=NAMESPACE, check=True):
        args = ["install", release, CHART, "--namespace", namespace, "--create-namespace"]
        for values_file in values_files:
            args += ["--values", values_file]
        return self.helm(*args, check=check)

    def manifest(self, release=RELEASE, namespace=NAMESPACE):
        return self.helm("get", "manifest", release, "--namespace", namespace).stdout

    def can(self, user, verb, resource, subresource=None, all_namespaces=False, namespace=None):
        args = ["auth", "can-i", verb, resource, "--as", user]
        if subresource:
            args += ["--subresource", subresource]
        if all_namespaces:
            args.append("--all-namespaces")
        if namespace:
            args += ["--namespace", namespace]
        result = self.kubectl(*args, check=False)
        if result.returncode not in (0, 1):
            raise AssertionError(f"kubectl auth can-i failed: {result.stderr}")
        return result.stdout.strip() == "yes"


class ClusterTestCase(unittest.TestCase):
    """A test class with its own control plane, started once for the class."""

    cluster = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster()
        try:
            cls.prepare()
        except BaseException:
            cls.cluster.stop()
            raise

    @classmethod
    def prepare(cls):
        """What the class does on its fresh server before its tests look."""

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()


def assert_managed_by_the_release(test, obj, release=RELEASE, namespace=NAMESPACE):
    where = f"{obj['kind']} {obj['metadata']['name']}"
    test.assertEqual(obj["metadata"]["labels"].get("app.kubernetes.io/managed-by"), "Helm", where)
    annotations = obj["metadata"].get("annotations", {})
    test.assertEqual(annotations.get("meta.helm.sh/release-name"), release, where)
    test.assertEqual(annotations.get("meta.helm.sh/release-namespace"), namespace, where)


class HelmInstallTest(ClusterTestCase):
    """`helm install` of the default chart: every object is stored, the CRD comes from
    crds/, and the chart's ServiceAccount may do exactly what the operator calls."""

    @classmethod
    def prepare(cls):
        cls.installed = cls.cluster.install()
        cls.live = cls.cluster.live_objects(cls.cluster.manifest())
        cls.rendered = template().objects

    def test_install_prints_the_notes(self):
        output = self.installed.stdout
        self.assertIn("STATUS: deployed", output)
        notes = self.cluster.helm("get", "notes", RELEASE, "--namespace", NAMESPACE).stdout
        for text in (output, notes):
            self.assertIn("kubectl get elasticvms", text)
            self.assertIn("Service hotplug-operator-metrics", text)
            self.assertNotIn("<no value>", text)
            self.assertIn("Central Deployment hotplug-operator-central", text)
            self.assertNotIn("Remote agent", text)

    def test_install_warns_about_nothing(self):
        # helm prints the server's warnings (an unknown field, a deprecated API) here.
        self.assertEqual(self.installed.stderr, "")

    def test_every_rendered_object_is_on_the_server(self):
        self.assertEqual(kinds(self.live), kinds(self.rendered))
        for obj in self.live:
            assert_managed_by_the_release(self, obj)
        daemonset = one(self.live, "DaemonSet")
        rendered = container(one(self.rendered, "DaemonSet"))
        self.assertEqual(container(daemonset)["args"], rendered["args"])
        self.assertEqual(container(daemonset)["securityContext"], rendered["securityContext"])
        for component, rules in (("agent", EXPECTED_CLUSTER_RULES),
                                 ("central", EXPECTED_CENTRAL_CLUSTER_RULES)):
            self.assertEqual(chart_lib.rules_by_resource(
                of_component(self.live, "ClusterRole", component)["rules"]), rules)

    def test_crd_from_crds_is_installed_and_established(self):
        crd = self.cluster.get("crd", CRD_NAME)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        self.assertEqual(conditions.get("Established"), "True")
        self.assertEqual(conditions.get("NamesAccepted"), "True")
        (source,) = yaml_objects(path=CRD)
        self.assertEqual([v["name"] for v in crd["spec"]["versions"]],
                         [v["name"] for v in source["spec"]["versions"]])
        self.assertEqual(crd["spec"]["names"]["shortNames"], source["spec"]["names"]["shortNames"])
        # crds/ is not part of the release: helm neither labels it nor lists it.
        self.assertNotIn("app.kubernetes.io/managed-by", crd["metadata"].get("labels", {}))
        self.assertNotIn("CustomResourceDefinition", kinds(self.live))

    def test_release_is_deployed(self):
        status = json.loads(self.cluster.helm("status", RELEASE, "--namespace", NAMESPACE,
                                              "--output", "json").stdout)
        self.assertEqual(status["info"]["status"], "deployed")
        self.assertEqual(status["version"], 1)

    def assert_granted(self, account, rules, **where):
        for (group, resource), verbs in rules.items():
            name, _, subresource = resource.partition("/")
            full = f"{name}.{group}" if group else name
            for verb in verbs:
                with self.subTest(account=account, verb=verb, resource=resource):
                    self.assertTrue(self.cluster.can(account, verb, full, subresource or None,
                                                     **where))

    def test_service_account_may_do_exactly_what_the_operator_calls(self):
        # The real authorizer, asked as the agents' ServiceAccount.
        self.assert_granted(AGENT_ACCOUNT, EXPECTED_CLUSTER_RULES, all_namespaces=True)
        self.assert_granted(AGENT_ACCOUNT, EXPECTED_AGENT_LEASE_RULES, namespace=AGENT_LEASES)
        evms = "elasticvms.hotplug.dev"
        denied = [("create", evms, None), ("delete", evms, None), ("patch", evms, None),
                  ("update", evms, None), ("patch", evms, "status"), ("get", "secrets", None),
                  ("list", "pods", None), ("create", "leases.coordination.k8s.io", None),
                  ("get", "nodes", None)]
        for verb, resource, subresource in denied:
            with self.subTest(verb=verb, resource=resource, subresource=subresource):
                self.assertFalse(self.cluster.can(AGENT_ACCOUNT, verb, resource, subresource))
        # Leases only in their own namespace, and no listing of them. Above all, not the
        # central's leader-election Lease: an agent that could write it could stop the
        # central from leading, and with it every label and report.
        leases = "leases.coordination.k8s.io"
        for verb, resource, namespace in (("list", leases, AGENT_LEASES),
                                          ("update", leases + "/hotplug-operator", NAMESPACE),
                                          ("get", leases + "/hotplug-operator", NAMESPACE),
                                          ("create", leases, NAMESPACE)):
            with self.subTest(verb=verb, resource=resource, namespace=namespace):
                self.assertFalse(self.cluster.can(AGENT_ACCOUNT, verb, resource,
                                                  namespace=namespace))

    def test_central_may_label_and_read_leases_and_nothing_more(self):
        self.assert_granted(CENTRAL_ACCOUNT, EXPECTED_CENTRAL_CLUSTER_RULES, all_namespaces=True)
        leases = "leases.coordination.k8s.io"
        for verb, resource, namespace in (("create", leases, NAMESPACE),
                                          ("get", leases + "/hotplug-operator", NAMESPACE),
                                          ("update", leases + "/hotplug-operator", NAMESPACE),
                                          ("list", leases, AGENT_LEASES)):
            with self.subTest(verb=verb, resource=resource, namespace=namespace):
                self.assertTrue(self.cluster.can(CENTRAL_ACCOUNT, verb, resource,
                                                 namespace=namespace))
        evms = "elasticvms.hotplug.dev"
        denied = [("update", leases + "/hotplug-agent-node-a", None, AGENT_LEASES),
                  ("get", leases + "/hotplug-agent-node-a", None, AGENT_LEASES),
                  ("create", leases, None, AGENT_LEASES), ("list", leases, None, NAMESPACE),
                  ("watch", leases, None, AGENT_LEASES), ("create", evms, None, None),
                  ("delete", evms, None, None), ("update", evms, None, None),
                  ("patch", evms, "status", None), ("get", "secrets", None, NAMESPACE),
                  ("list", "pods", None, None), ("get", "nodes", None, None)]
        for verb, resource, subresource, namespace in denied:
            with self.subTest(verb=verb, resource=resource, subresource=subresource):
                self.assertFalse(self.cluster.can(CENTRAL_ACCOUNT, verb, resource, subresource,
                                                  namespace=namespace))

    def test_every_rendered_object_passes_strict_server_validation(self):
        # Server-side field validation (Strict) refuses unknown and duplicate fields that a
        # plain create only warns about; the dry run stores nothing.
        self.cluster.install_monitoring_crds()
        self.cluster.ensure_namespace("monitoring")
        for name, values_files in (("strict-defaults", ()), ("strict-all", (ALL_TOGGLES,))):
            with self.subTest(values=name):
                self.cluster.ensure_namespace(name)
                result = chart_lib.helm(*chart_lib.template_args(values_files, release=name,
                                                                 namespace=name))
                self.assertEqual(result.returncode, 0, result.stderr)
                objects = chart_lib.Rendering(result.stdout).objects
                # A dry run creates no namespace: the agents' Lease namespace is checked first,
                # then made, so that the Roles rendered into it can be checked too. The YAML
                # goes as helm wrote it (a duplicate key would not survive a re-encoding).
                documents = re.split(r"^---$", result.stdout, flags=re.MULTILINE)
                namespaces = [d for d in documents if re.search(r"^kind: Namespace$", d, re.M)]
                rest = [d for d in documents if d not in namespaces and d.strip()]
                names = []
                self.assertTrue(namespaces, "the agents' Lease namespace is not rendered")
                for batch in (namespaces, rest):
                    created = self.cluster.kubectl(
                        "create", "--dry-run=server", "--validate=strict", "-f", "-", "-o",
                        "name", input_text="\n---".join(batch), check=False)
                    self.assertEqual(created.returncode, 0, created.stderr)
                    names += created.stdout.split()
                    if batch is namespaces:
                        self.cluster.ensure_namespace(name + "-agents")
                self.assertEqual(len(names), len(objects))


class HelmAllTogglesInstallTest(ClusterTestCase):
    """`helm install` with every optional feature on: refused, naming the kinds, while the
    Prometheus Operator's CRDs are missing; installed once they are there."""

    @classmethod
    def prepare(cls):
        cls.cluster.ensure_namespace("monitoring")  # where the dashboard ConfigMap goes
        cls.without_crds = cls.cluster.install(ALL_TOGGLES, check=False)
        cls.cluster.install_monitoring_crds()
        cls.installed = cls.cluster.install(ALL_TOGGLES)
        cls.live = cls.cluster.live_objects(cls.cluster.manifest())
        cls.rendered = template(ALL_TOGGLES).objects

    def test_without_monitoring_crds_helm_names_the_missing_kinds_and_creates_nothing(self):
        self.assertNotEqual(self.without_crds.returncode, 0)
        for kind in ("ServiceMonitor", "PrometheusRule"):
            self.assertIn(f'no matches for kind "{kind}" in version "monitoring.coreos.com/v1"',
                          self.without_crds.stderr)
        # The retry below installed revision 1: the refused attempt left no release behind.
        history = json.loads(self.cluster.helm("history", RELEASE, "--namespace", NAMESPACE,
                                               "--output", "json").stdout)
        self.assertEqual([entry["revision"] for entry in history], [1])

    def test_every_rendered_object_is_on_the_server(self):
        self.assertEqual(kinds(self.live), kinds(self.rendered))
        for obj in self.live:
            assert_managed_by_the_release(self, obj)
        self.assertEqual(one(self.live, "ConfigMap")["metadata"]["namespace"], "monitoring")
        self.assertEqual(one(self.live, "PrometheusRule")["spec"],
                         one(self.rendered, "PrometheusRule")["spec"])
        for component in ("central", "remote-agent"):
            self.assertEqual(container(of_component(self.live, "Deployment", component))["args"],
                             container(of_component(self.rendered, "Deployment",
                                                    component))["args"])

    def test_install_warns_about_nothing(self):
        self.assertEqual(self.installed.stderr, "")

    def test_notes_mention_the_central_deployment_and_the_dashboard(self):
        output = self.installed.stdout
        self.assertIn("Central Deployment hotplug-operator-central", output)
        self.assertIn("create secret generic hotplug-operator-libvirt-tls", output)
        self.assertIn("Grafana dashboard: ConfigMap hotplug-operator-dashboard in monitoring",
                      output)
        self.assertNotIn("<no value>", output)


class HelmUpgradeTest(ClusterTestCase):
    """`helm upgrade` with changed values changes, adds and removes objects on the server;
    an upgrade with values the schema refuses changes nothing."""

    UPGRADE_VALUES = (
        "workers: 5\n"
        "podAnnotations:\n  example.com/upgraded: \"true\"\n"
        "serviceAccount:\n  annotations:\n    example.com/owner: virt\n"
        "metrics:\n  service:\n    enabled: false\n"
        "central:\n  enabled: false\n"
        "remoteAgents:\n  - nodeName: remote-1\n    libvirtUri: qemu+tls://remote-1/system\n"
    )

    @classmethod
    def prepare(cls):
        cls.cluster.install()
        cls.before = cls.cluster.get("daemonset", RELEASE, "--namespace", NAMESPACE)
        values_file = chart_lib.write_temp(cls.cluster.workdir, "upgrade.yaml", cls.UPGRADE_VALUES)
        cls.upgraded = cls.cluster.helm("upgrade", RELEASE, CHART, "--namespace", NAMESPACE,
                                        "--values", values_file)
        bad_file = chart_lib.write_temp(cls.cluster.workdir, "bad.yaml", "workers: 0\n")
        cls.refused = cls.cluster.helm("upgrade", RELEASE, CHART, "--namespace", NAMESPACE,
                                       "--values", bad_file, check=False)
        cls.after = cls.cluster.get("daemonset", RELEASE, "--namespace", NAMESPACE)

    def test_changed_values_reach_the_daemonset(self):
        self.assertIn("--workers=2", container(self.before)["args"])
        args = container(self.after)["args"]
        self.assertIn("--workers=5", args)
        self.assertNotIn("--workers=2", args)
        self.assertEqual(self.after["spec"]["template"]["metadata"].get("annotations"),
                         {"example.com/upgraded": "true"})
        self.assertGreater(self.after["metadata"]["generation"],
                           self.before["metadata"]["generation"])
        account = self.cluster.get("serviceaccount", RELEASE, "--namespace", NAMESPACE)
        self.assertEqual(account["metadata"]["annotations"].get("example.com/owner"), "virt")

    def test_objects_turned_off_are_deleted(self):
        for kind, name in (("service", RELEASE + "-metrics"), ("deployment", RELEASE + "-central"),
                           ("clusterrole", RELEASE + "-central"),
                           ("serviceaccount", RELEASE + "-central")):
            with self.subTest(kind=kind):
                result = self.cluster.kubectl("get", kind, name, "--namespace", NAMESPACE,
                                              check=False)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn("NotFound", result.stderr)

    def test_objects_turned_on_are_created(self):
        live = self.cluster.live_objects(self.cluster.manifest())
        self.assertEqual(kinds(live), collections.Counter({
            "Namespace": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
            "Role": 1, "RoleBinding": 1, "DaemonSet": 1, "Deployment": 1}))
        for obj in live:
            assert_managed_by_the_release(self, obj)
        deployment = of_component(live, "Deployment", "remote-agent")
        self.assertIn("--workers=5", container(deployment)["args"])
        self.assertIn("--node-name=remote-1", container(deployment)["args"])
        self.assertFalse(deployment["spec"]["template"]["spec"].get("volumes"))  # no TLS secret

    def test_history_has_the_two_revisions_and_the_refused_upgrade_none(self):
        self.assertIn("has been upgraded", self.upgraded.stdout)
        self.assertEqual(self.upgraded.stderr, "")  # no warning from the server
        history = json.loads(self.cluster.helm("history", RELEASE, "--namespace", NAMESPACE,
                                               "--output", "json").stdout)
        self.assertEqual([(h["revision"], h["status"]) for h in history],
                         [(1, "superseded"), (2, "deployed")])

    def test_schema_refusal_is_helm_s_and_changes_nothing(self):
        self.assertNotEqual(self.refused.returncode, 0)
        self.assertIn("- workers: Must be greater than or equal to 1", self.refused.stderr)
        self.assertEqual(self.after["metadata"]["generation"],
                         self.cluster.get("daemonset", RELEASE, "--namespace", NAMESPACE)
                         ["metadata"]["generation"])
        self.assertIn("--workers=5", container(self.after)["args"])


class HelmUninstallTest(ClusterTestCase):
    """`helm uninstall` removes every object of the release and its records; the CRD (from
    crds/) and the users' ElasticVMs stay, as helm does for crds/."""

    @classmethod
    def prepare(cls):
        cls.cluster.install_monitoring_crds()
        cls.cluster.ensure_namespace("monitoring")
        cls.cluster.install(ALL_TOGGLES)
        cls.manifest_text = cls.cluster.manifest()
        cls.before = cls.cluster.live_objects(cls.manifest_text)
        cls.cluster.apply_json({"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                                "metadata": {"name": "web-01", "namespace": "default"},
                                "spec": {"nodeName": "node-a", "cpu": {"vcpus": 2}}})
        cls.uninstalled = cls.cluster.helm("uninstall", RELEASE, "--namespace", NAMESPACE)

    def test_every_object_of_the_release_is_deleted(self):
        self.assertEqual(len(self.before), len(chart_lib.Rendering(self.manifest_text).objects))
        self.assertIn(f'release "{RELEASE}" uninstalled', self.uninstalled.stdout)
        # Deletes without finalizers take effect at once; the poll only bounds the wait. The
        # agents' Lease namespace is deleted too, but a namespace is finished by the
        # namespace controller, which this control plane (an API server alone) does not run:
        # Terminating is as far as it can get here.
        def left():
            return [o for o in self.cluster.live_objects(self.manifest_text,
                                                         ignore_not_found=True)
                    if not (o["kind"] == "Namespace" and o["metadata"].get("deletionTimestamp")
                            and o.get("status", {}).get("phase") == "Terminating")]
        try:
            poll(lambda: left() == [], "every object of the release to be deleted", timeout_s=20)
        except AssertionError as error:
            names = ["%s/%s" % (o["kind"], o["metadata"]["name"]) for o in left()]
            raise AssertionError(f"{error}; still there: {names}") from None

    def test_release_records_are_deleted(self):
        secrets = self.cluster.get("secrets", "--namespace", NAMESPACE,
                                   "--selector", f"owner=helm,name={RELEASE}")
        self.assertEqual(secrets["items"], [])
        listed = json.loads(self.cluster.helm("list", "--all", "--namespace", NAMESPACE,
                                              "--output", "json").stdout)
        self.assertEqual(listed, [])

    def test_crds_and_elastic_vms_stay(self):
        crd = self.cluster.get("crd", CRD_NAME)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        self.assertEqual(conditions.get("Established"), "True")
        vm = self.cluster.get("elasticvm", "web-01", "--namespace", "default")
        self.assertEqual(vm["spec"]["cpu"]["vcpus"], 2)
        for plural in ("servicemonitors", "prometheusrules"):
            self.cluster.get("crd", plural + ".monitoring.coreos.com")


class ExamplesApplyTest(ClusterTestCase):
    """A user's first steps on a real server: apply deploy/'s CRD copy, then the examples,
    with strict field validation against the CRD's schema."""

    @classmethod
    def prepare(cls):
        cls.cluster.control_plane.install_crd(
            os.path.join(DEPLOY, "crd", "hotplug.dev_elasticvms.yaml"))

    def test_examples_apply_strictly_and_list(self):
        directory = os.path.join(DEPLOY, "examples")
        applied = self.cluster.kubectl("apply", "--validate=strict", "-f", directory).stdout
        examples = [n for n in os.listdir(directory) if n.endswith(".yaml")]
        self.assertEqual(applied.count(" created"), len(examples), applied)
        listed = self.cluster.get("elasticvms", "--all-namespaces")
        self.assertEqual(len(listed["items"]), len(examples))
        for item in listed["items"]:
            # The CRD's defaults were applied, so the schema really was in force.
            self.assertIn(item["spec"]["cpu"]["guestOnline"], ("auto", "agent", "none"))
            self.assertIn("persist", item["spec"])
        table = self.cluster.kubectl("get", "evm", "--all-namespaces").stdout
        for column in ("DOMAIN", "NODE", "VCPUS", "READY"):
            self.assertIn(column, table.splitlines()[0])

    def test_schema_refuses_what_it_must(self):
        cases = [
            ({"nodeName": "node-a", "cpu": {"vcpus": 0}}, "spec.cpu.vcpus"),
            ({"nodeName": "node-a", "cpu": {"vcpus": 2, "guestOnline": "maybe"}},
             "spec.cpu.guestOnline"),
            ({"nodeName": "node-a", "cpu": {"vcpu": 2}}, 'unknown field "spec.cpu.vcpu"'),
        ]
        for spec, message in cases:
            with self.subTest(spec=spec):
                result = self.cluster.kubectl(
                    "apply", "--validate=strict", "-f", "-", check=False,
                    input_text=json.dumps({"apiVersion": "hotplug.dev/v1alpha1",
                                           "kind": "ElasticVM",
                                           "metadata": {"name": "bad", "namespace": "default"},
                                           "spec": spec}))
                self.assertNotEqual(result.returncode, 0, result.stdout)
                self.assertIn(message, result.stderr)


class BinarySmokeTest(ClusterTestCase):
    """The built binary with the installed chart's args and ServiceAccounts (so with exactly
    the chart's RBAC), as the agent (the DaemonSet's) and as the central node assigner (the
    Deployment's): the agent answers the chart's probes and serves metrics; an ElasticVM that
    names node-a only in spec.nodeName reaches it because the central labels it, and gets
    its status written; one naming no node gets Ready=False, NoNode, from the central. Fake
    hypervisor (no libvirtd here); ports chosen by the kernel."""

    @classmethod
    def setUpClass(cls):
        if not Tools.operator:
            raise unittest.SkipTest("no --binary given (the built hotplug-operator)")
        super().setUpClass()

    @classmethod
    def prepare(cls):
        cls.cluster.install()
        cls.daemonset = cls.cluster.get("daemonset", RELEASE, "--namespace", NAMESPACE)
        cls.deployment = cls.cluster.get("deployment", RELEASE + "-central",
                                         "--namespace", NAMESPACE)

    def start_operator(self, workload, name, extra=()):
        """The binary with `workload`'s args, as what kube would make of them, and a token of
        its ServiceAccount. Returns (container, process, log path)."""
        spec = container(workload)
        args = []
        for arg in spec["args"]:
            flag = arg_name(arg)
            if flag in ("--metrics-bind-address", "--health-probe-bind-address"):
                arg = flag + "=127.0.0.1:0"
            elif flag == "--node-name":
                arg = "--node-name=node-a"  # what kube makes of $(NODE_NAME)
            args.append(arg.replace("$(POD_NAMESPACE)", NAMESPACE))
        account = workload["spec"]["template"]["spec"]["serviceAccountName"]
        token = self.cluster.control_plane.service_account_token(NAMESPACE, account)
        kubeconfig = self.cluster.control_plane.write_kubeconfig(
            os.path.join(self.cluster.workdir, f"{name}.kubeconfig"), token=token)
        log_path = os.path.join(self.cluster.workdir, f"{name}.log")
        env = dict(os.environ)
        # A sanitizer build: cpprestsdk's never-ending pool threads are not our leak.
        env.setdefault("LSAN_OPTIONS", f"suppressions={LSAN_SUPPRESSIONS}")
        with open(log_path, "wb") as log:
            process = subprocess.Popen([Tools.operator, *args, "--kubeconfig", kubeconfig,
                                        *extra], stdout=subprocess.DEVNULL, stderr=log,
                                       stdin=subprocess.DEVNULL, env=env)
        return spec, process, log_path

    def test_agent_and_central_with_the_chart_s_args_and_rbac(self):
        central, central_process, central_log = self.start_operator(self.deployment, "central")
        agent, process, log_path = self.start_operator(
            self.daemonset, "agent", ["--hypervisor=fake", "--fake-domains=1"])
        try:
            for spec, proc, log in ((agent, process, log_path),
                                    (central, central_process, central_log)):
                ports = self.wait_for_ports(log, proc)
                health = "http://127.0.0.1:%d" % ports["health server listening"]
                for probe in ("livenessProbe", "readinessProbe"):
                    path = spec[probe]["httpGet"]["path"]
                    self.assertEqual(self.poll_status(health + path), 200,
                                     "%s %s\n%s" % (probe, path, self.tail(log)))
                metrics = "http://127.0.0.1:%d/metrics" % ports["metrics server listening"]
                self.assertEqual(self.poll_status(metrics), 200)
                with urllib.request.urlopen(metrics, timeout=5) as response:
                    self.assertIn("# TYPE", response.read().decode())
            # The central leads and has seen the agent's Lease before the objects come.
            self.wait_for_log(central_log, central_process, "agent presence: an agent came")
            # vm-0 is a fake domain with 1 of 8 vCPUs enabled. It names node-a in spec only:
            # the central's label (a patch of elasticvms) brings it to the agent, whose
            # status write is an update of elasticvms/status.
            self.cluster.apply_json({"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                                     "metadata": {"name": "vm-0", "namespace": "default"},
                                     "spec": {"nodeName": "node-a", "cpu": {"vcpus": 2}}},
                                    {"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
                                     "metadata": {"name": "vm-lost", "namespace": "default"},
                                     "spec": {"cpu": {"vcpus": 2}}})

            def get(name):
                return self.cluster.get("elasticvm", name, "--namespace", "default")

            def ready_reason(name):
                conditions = get(name).get("status", {}).get("conditions", [])
                return {c["type"]: c for c in conditions}.get("Ready", {}).get("reason")
            try:
                poll(lambda: get("vm-0").get("status", {}).get("vcpus", {}).get("current") == 2,
                     "status.vcpus.current of vm-0 to be 2", timeout_s=60)
                poll(lambda: ready_reason("vm-lost") == "NoNode",
                     "vm-lost to be reported NoNode", timeout_s=60)
            except AssertionError as error:
                raise AssertionError(f"{error}\n--- agent\n{self.tail(log_path)}"
                                     f"--- central\n{self.tail(central_log)}") from None
            self.assertEqual(get("vm-0")["metadata"]["labels"], {"hotplug.dev/node": "node-a"})
            for log in (log_path, central_log):
                with open(log, encoding="utf-8", errors="replace") as handle:
                    self.assertNotIn("Forbidden", handle.read(), log)
        finally:
            for proc in (process, central_process):
                proc.terminate()
            codes = [proc.wait(timeout=30) for proc in (process, central_process)]
        self.assertEqual(codes, [0, 0], self.tail(log_path) + self.tail(central_log))

    def wait_for_log(self, log_path, process, message, timeout_s=30.0):
        def logged():
            if process.poll() is not None:
                raise AssertionError("the operator exited: " + self.tail(log_path))
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                return any(f'"msg":"{message}"' in line for line in handle)
        return poll(logged, message, timeout_s, interval_s=0.05)

    @staticmethod
    def tail(log_path, count=20):
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-count:])

    def wait_for_ports(self, log_path, process, timeout_s=20.0):
        """Ports of the servers, from their "... listening" JSON log lines."""
        wanted = ("health server listening", "metrics server listening")

        def ports():
            found = {}
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("msg") in wanted:
                        found[entry["msg"]] = int(entry["port"])
            if process.poll() is not None:
                raise AssertionError("the operator exited: " + self.tail(log_path))
            return found if len(found) == len(wanted) else None

        return poll(ports, "the operator's listening ports", timeout_s, interval_s=0.05)

    @staticmethod
    def poll_status(url, timeout_s=20.0):
        """The first 200 within the deadline, else the last status seen."""
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = None
            if status == 200:
                return status
            time.sleep(0.05)
        return status


def main():
    rest = chart_lib.setup(__doc__)
    control_plane.require_assets()  # exits 77 (skip) outside CI, 1 in CI, when missing
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()

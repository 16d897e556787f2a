#!/usr/bin/env python3
"""Specification of what hotplug-operator ships: the Helm chart, the plain manifests in
deploy/, and how the two agree.

The chart is rendered by tests/chart/render.go (text/template + sprig, as helm does) and read
back as JSON, so this needs only the Python standard library. Run a group with

    python3 tests/chart/chart_test.py --render BUILD/chart-render [--kubectl kubectl] [Group ...]
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(REPO, "charts", "hotplug-operator")
DEPLOY = os.path.join(REPO, "deploy")
ALL_TOGGLES = os.path.join(REPO, "tests", "chart", "values-all-toggles.yaml")
CRD = os.path.join(REPO, "crd", "hotplug.dev_elasticvms.yaml")

RENDER = None  # path of the renderer binary, from --render
KUBECTL = None  # path of kubectl, from --kubectl
OPERATOR = None  # path of the built hotplug-operator, from --binary

# The API calls the operator makes (design: controller/), and so all RBAC may grant.
EXPECTED_CLUSTER_RULES = {
    ("hotplug.dev", "elasticvms"): {"get", "list", "watch"},
    ("hotplug.dev", "elasticvms/status"): {"update"},
    ("", "events"): {"create", "patch"},
}
EXPECTED_LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}

# Flags the binary accepts; an argument outside this list is a typo that would stop it.
KNOWN_FLAGS = {
    "--kubeconfig", "--namespace", "--node-name", "--workers", "--resync-period",
    "--leader-elect", "--leader-elect-namespace", "--leader-elect-id",
    "--leader-elect-lease-duration", "--leader-elect-renew-deadline",
    "--leader-elect-retry-period", "--health-probe-bind-address", "--metrics-bind-address",
    "--libvirt-uri", "--hooks-dir", "--hook-timeout", "--log-level", "--standalone",
}
# What the chart passes beyond deploy/daemonset.yaml, with default values: each equals the
# binary's own default, so the default chart and the plain manifest behave the same.
CHART_EXTRA_DEFAULT_ARGS = {"--workers=2", "--resync-period=10m", "--log-level=info"}


# ---------------------------------------------------------------- helpers

def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def render(*override_files, expect_failure=False):
    """Renders the chart with the override files; returns (objects, notes) or stderr."""
    # -strict: a template that reads a value values.yaml does not have is an error, not "".
    command = [RENDER, "-chart", CHART, "-json", "-strict"]
    for override in override_files:
        command += ["-f", override]
    result = run(command)
    if expect_failure:
        if result.returncode == 0:
            raise AssertionError("render succeeded but should have failed")
        return result.stderr
    if result.returncode != 0:
        raise AssertionError("render failed: " + result.stderr)
    parsed = json.loads(result.stdout)
    return [entry["object"] for entry in parsed["objects"] or []], parsed["notes"], parsed


def render_with(values_text, expect_failure=False):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(values_text)
    try:
        return render(handle.name, expect_failure=expect_failure)
    finally:
        os.unlink(handle.name)


def yaml_files(*paths, stdin=None):
    result = run([RENDER, "-yaml-to-json", *paths], input=stdin)
    if result.returncode != 0:
        raise AssertionError("cannot parse YAML: " + result.stderr)
    return json.loads(result.stdout)


def merged_values(*override_files):
    command = [RENDER, "-chart", CHART, "-values"]
    for override in override_files:
        command += ["-f", override]
    result = run(command)
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


def kinds(objects):
    return collections.Counter(obj["kind"] for obj in objects)


def one(objects, kind, name_suffix=""):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    if len(found) != 1:
        raise AssertionError("expected one %s *%s, found %d" % (kind, name_suffix, len(found)))
    return found[0]


def rules_by_resource(rules):
    """{(apiGroup, resource): verbs}, rejecting wildcards and duplicate grants."""
    granted = collections.defaultdict(set)
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule["verbs"]:
                    if "*" in (group, resource, verb):
                        raise AssertionError("wildcard in RBAC rule %r" % rule)
                    granted[(group, resource)].add(verb)
        if "nonResourceURLs" in rule:
            raise AssertionError("non-resource URL granted: %r" % rule)
    return dict(granted)


def container(workload):
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per operator pod"
    return containers[0]


def arg_name(arg):
    return arg.split("=", 1)[0]


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


# ------------------------------------------------------- draft-07 subset validator

_IGNORED_KEYWORDS = {
    "$schema", "title", "description", "default", "format", "examples",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
}
_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def validate(schema, value, where="$"):
    """Errors of value against a JSON Schema (the draft-07 keywords these schemas use, plus
    OpenAPI's x-kubernetes-int-or-string). An unknown keyword is an error of the validator,
    so it never passes a schema it does not understand."""
    errors = []
    unknown = set(schema) - _IGNORED_KEYWORDS - {
        "type", "enum", "const", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "properties", "required", "additionalProperties", "items", "x-kubernetes-int-or-string",
    }
    if unknown:
        raise ValueError("validator does not know %s (at %s)" % (sorted(unknown), where))
    if schema.get("x-kubernetes-int-or-string"):
        if not (_JSON_TYPES["integer"](value) or isinstance(value, str)):
            return ["%s: %r is neither an integer nor a string" % (where, value)]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_JSON_TYPES[t](value) for t in types):
            return ["%s: %r is not of type %s" % (where, value, "/".join(types))]
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r is not one of %r" % (where, value, schema["enum"]))
    if "const" in schema and value != schema["const"]:
        errors.append("%s: %r is not %r" % (where, value, schema["const"]))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append("%s: %r does not match %s" % (where, value, schema["pattern"]))
        if len(value) < schema.get("minLength", 0):
            errors.append("%s: %r is shorter than %d" % (where, value, schema["minLength"]))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append("%s: %r is longer than %d" % (where, value, schema["maxLength"]))
    if _JSON_TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append("%s: %r is below %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append("%s: %r is above %r" % (where, value, schema["maximum"]))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append("%s: %s is required" % (where, key))
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += validate(properties[key], item, "%s.%s" % (where, key))
            elif extra is False:
                errors.append("%s: unknown key %s" % (where, key))
            elif isinstance(extra, dict):
                errors += validate(extra, item, "%s.%s" % (where, key))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += validate(schema["items"], item, "%s[%d]" % (where, index))
    return errors


# ---------------------------------------------------------------- the tests

class ChartDefaultsTest(unittest.TestCase):
    """The chart with values.yaml alone: the per-node agents and nothing optional."""

    @classmethod
    def setUpClass(cls):
        cls.objects, cls.notes, _ = render()

    def test_renders_exactly_the_base_objects(self):
        self.assertEqual(kinds(self.objects), collections.Counter({
            "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
            "DaemonSet": 1, "Service": 1}))

    def test_cluster_role_grants_exactly_what_the_operator_calls(self):
        role = one(self.objects, "ClusterRole")
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_CLUSTER_RULES)

    def test_no_lease_access_without_leader_election(self):
        self.assertNotIn("Role", kinds(self.objects))
        self.assertNotIn("Deployment", kinds(self.objects))

    def test_agent_args(self):
        args = container(one(self.objects, "DaemonSet"))["args"]
        self.assertEqual(args, [
            "--node-name=$(NODE_NAME)", "--libvirt-uri=qemu:///system",
            "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
            "--workers=2", "--resync-period=10m", "--log-level=info"])

    def test_agent_node_name_comes_from_the_downward_api(self):
        env = container(one(self.objects, "DaemonSet"))["env"]
        self.assertEqual(env, [{"name": "NODE_NAME",
                                "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}])

    def test_agent_probes(self):
        agent = container(one(self.objects, "DaemonSet"))
        ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
        self.assertEqual(ports, {"metrics": 8080, "health": 8081})
        self.assertEqual(agent["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "health"})
        self.assertEqual(agent["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "health"})

    def test_agent_mounts_only_the_libvirt_socket_directory(self):
        daemonset = one(self.objects, "DaemonSet")
        self.assertEqual(daemonset["spec"]["template"]["spec"]["volumes"], [{
            "name": "libvirt-socket-dir",
            "hostPath": {"path": "/var/run/libvirt", "type": "Directory"}}])
        self.assertEqual(container(daemonset)["volumeMounts"], [{
            "name": "libvirt-socket-dir", "mountPath": "/var/run/libvirt", "readOnly": True}])

    def test_agent_security_context_is_tight_but_root(self):
        pod = one(self.objects, "DaemonSet")["spec"]["template"]["spec"]
        self.assertEqual(pod["securityContext"], {"seccompProfile": {"type": "RuntimeDefault"}})
        self.assertNotIn("hostNetwork", pod)
        self.assertNotIn("hostPID", pod)
        self.assertEqual(container(one(self.objects, "DaemonSet"))["securityContext"], {
            "runAsUser": 0, "runAsNonRoot": False, "privileged": False,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})

    def test_agent_has_resources(self):
        resources = container(one(self.objects, "DaemonSet"))["resources"]
        self.assertEqual(set(resources), {"requests", "limits"})
        for part in ("requests", "limits"):
            self.assertEqual(set(resources[part]), {"cpu", "memory"})

    def test_metrics_service_selects_the_operator_pods(self):
        service = one(self.objects, "Service")
        pod_labels = one(self.objects, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
        for key, value in service["spec"]["selector"].items():
            self.assertEqual(pod_labels.get(key), value)
        self.assertEqual(service["spec"]["ports"][0]["targetPort"], "metrics")

    def test_namespaced_objects_are_in_the_release_namespace(self):
        for obj in self.objects:
            if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
                self.assertEqual(obj["metadata"].get("namespace"), "hotplug-system", obj["kind"])

    def test_every_object_carries_the_standard_labels(self):
        for obj in self.objects:
            labels = obj["metadata"]["labels"]
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                        "app.kubernetes.io/managed-by", "helm.sh/chart"):
                self.assertIn(key, labels, obj["kind"])

    def test_notes_render(self):
        self.assertIn("kubectl get elasticvms", self.notes)
        self.assertNotIn("<no value>", self.notes)


class ChartAllTogglesTest(unittest.TestCase):
    """The chart with every optional feature on (values-all-toggles.yaml)."""

    @classmethod
    def setUpClass(cls):
        cls.objects, cls.notes, cls.raw = render(ALL_TOGGLES)

    def test_renders_every_optional_object(self):
        self.assertEqual(kinds(self.objects), collections.Counter({
            "ServiceAccount": 2, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1,
            "RoleBinding": 1, "DaemonSet": 1, "Deployment": 1, "Service": 1,
            "ServiceMonitor": 1, "PrometheusRule": 1, "ConfigMap": 1}))

    def test_every_template_renders_something_with_one_of_the_value_sets(self):
        templates = {name for name in os.listdir(os.path.join(CHART, "templates"))
                     if name.endswith(".yaml")}
        sources = {os.path.basename(entry["source"]) for entry in self.raw["objects"]}
        self.assertEqual(templates - sources, set())

    def test_rbac_is_still_exactly_what_the_operator_calls(self):
        self.assertEqual(rules_by_resource(one(self.objects, "ClusterRole")["rules"]),
                         EXPECTED_CLUSTER_RULES)
        role = one(self.objects, "Role")
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_LEASE_RULES)
        for rule in role["rules"]:
            if set(rule["verbs"]) & {"get", "update"}:
                self.assertEqual(rule.get("resourceNames"), ["hotplug-operator"])

    def test_only_the_central_deployment_may_touch_leases(self):
        central_account = one(self.objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        agent_account = one(self.objects, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
        self.assertNotEqual(central_account, agent_account)
        binding = one(self.objects, "RoleBinding")
        self.assertEqual([s["name"] for s in binding["subjects"]], [central_account])
        cluster_binding = one(self.objects, "ClusterRoleBinding")
        self.assertEqual({s["name"] for s in cluster_binding["subjects"]},
                         {central_account, agent_account})

    def test_central_deployment(self):
        deployment = one(self.objects, "Deployment")
        self.assertEqual(deployment["spec"]["replicas"], 2)
        args = container(deployment)["args"]
        for expected in ("--leader-elect", "--leader-elect-namespace=hotplug-system",
                         "--leader-elect-id=hotplug-operator",
                         "--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s",
                         "--leader-elect-retry-period=2s"):
            self.assertIn(expected, args)
        self.assertTrue(any(a.startswith("--libvirt-uri=qemu+tls://") for a in args))
        self.assertFalse(any(a.startswith("--node-name") for a in args))
        # Its own scope, apart from the agents' (which watch "vms").
        self.assertIn("--namespace=remote-vms", args)
        self.assertNotIn("--namespace=vms", args)
        pod = deployment["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertFalse(any("hostPath" in v for v in pod.get("volumes", [])))
        security = container(deployment)["securityContext"]
        self.assertEqual(security["capabilities"], {"drop": ["ALL"]})
        self.assertTrue(security["readOnlyRootFilesystem"])
        self.assertFalse(security["allowPrivilegeEscalation"])

    def test_every_arg_is_a_known_flag(self):
        for kind in ("DaemonSet", "Deployment"):
            for arg in container(one(self.objects, kind))["args"]:
                self.assertIn(arg_name(arg), KNOWN_FLAGS, arg)

    def test_agent_with_every_toggle(self):
        daemonset = one(self.objects, "DaemonSet")
        pod = daemonset["spec"]["template"]["spec"]
        args = container(daemonset)["args"]
        for expected in ("--namespace=vms", "--workers=4", "--log-level=debug",
                         "--hooks-dir=/etc/hotplug-operator/hooks", "--hook-timeout=45s"):
            self.assertIn(expected, args)
        # socketGroup set: non-root, reaching the socket through the group.
        self.assertEqual(pod["securityContext"]["supplementalGroups"], [992])
        security = container(daemonset)["securityContext"]
        self.assertTrue(security["runAsNonRoot"])
        self.assertNotEqual(security["runAsUser"], 0)
        self.assertEqual(security["capabilities"], {"drop": ["ALL"]})
        # The host's socket directory is mounted where the libvirt client looks for it.
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(volumes["libvirt-socket-dir"]["hostPath"]["path"], "/run/libvirt")
        self.assertEqual(volumes["hooks"]["configMap"]["name"], "hotplug-hooks")
        mounts = {m["name"]: m["mountPath"] for m in container(daemonset)["volumeMounts"]}
        self.assertEqual(mounts, {"libvirt-socket-dir": "/var/run/libvirt",
                                  "hooks": "/etc/hotplug-operator/hooks"})
        self.assertEqual(pod["tolerations"][0]["key"], "node-role.kubernetes.io/hypervisor")
        self.assertIn("nodeAffinity", pod["affinity"])
        self.assertEqual(pod["priorityClassName"], "system-node-critical")

    def test_dashboard_configmap_holds_the_dashboard_json(self):
        configmap = one(self.objects, "ConfigMap")
        self.assertEqual(configmap["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(configmap["metadata"]["namespace"], "monitoring")
        (text,) = configmap["data"].values()
        with open(os.path.join(CHART, "files", "dashboard.json")) as handle:
            self.assertEqual(json.loads(text), json.load(handle))

    def test_service_monitor_scrapes_the_metrics_service(self):
        monitor = one(self.objects, "ServiceMonitor")
        service = one(self.objects, "Service")
        for key, value in monitor["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(service["metadata"]["labels"].get(key), value)
        port_names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            self.assertIn(endpoint["port"], port_names)
            self.assertEqual(endpoint["path"], "/metrics")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "prometheus")

    def test_prometheus_rules_are_well_formed(self):
        rule = one(self.objects, "PrometheusRule")
        groups = rule["spec"]["groups"]
        self.assertTrue(groups)
        for group in groups:
            self.assertTrue(group["rules"], group["name"])
            for alert in group["rules"]:
                self.assertTrue(alert.get("alert") or alert.get("record"))
                self.assertTrue(alert["expr"])
                self.assertNotIn("{{ include", alert["expr"])  # tpl did run

    def test_notes_mention_the_central_deployment(self):
        self.assertIn("hotplug-operator-central", self.notes)


class ChartValueCasesTest(unittest.TestCase):
    """Single values changed, and contradictions the chart must refuse."""

    def test_metrics_service_can_be_turned_off(self):
        objects, _, _ = render_with("metrics:\n  service:\n    enabled: false\n")
        self.assertNotIn("Service", kinds(objects))

    def test_existing_service_account(self):
        objects, _, _ = render_with("serviceAccount:\n  create: false\n  name: vm-admins\n")
        self.assertNotIn("ServiceAccount", kinds(objects))
        pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], "vm-admins")

    def test_image_tag_defaults_to_app_version_and_can_be_set(self):
        objects, _, _ = render_with("image:\n  repository: registry.example/hotplug\n  tag: v9\n")
        self.assertEqual(container(one(objects, "DaemonSet"))["image"], "registry.example/hotplug:v9")

    def test_fullname_override_renames_everything(self):
        objects, _, _ = render_with("fullnameOverride: hp\n")
        self.assertEqual(one(objects, "DaemonSet")["metadata"]["name"], "hp")
        self.assertEqual(one(objects, "Service")["metadata"]["name"], "hp-metrics")

    def test_hooks_from_the_host(self):
        objects, _, _ = render_with(
            "hooks:\n  dir: /hooks\n  hostPath: /etc/hotplug/hooks\nleaderElection:\n  enabled: true\n")
        agent = one(objects, "DaemonSet")
        volumes = {v["name"]: v for v in agent["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["hooks"]["hostPath"]["path"], "/etc/hotplug/hooks")
        self.assertIn("--hooks-dir=/hooks", container(agent)["args"])
        # The central replicas do not run on the hypervisors: no host hooks for them.
        central = one(objects, "Deployment")
        self.assertFalse(any(a.startswith("--hooks-dir") for a in container(central)["args"]))

    def test_large_socket_group_stays_an_integer(self):
        # Values are float64 in helm; printed plainly, 1000000 would become 1e+06.
        objects, _, _ = render_with("libvirt:\n  socketGroup: 1000000\n")
        pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
        self.assertEqual(pod["securityContext"]["supplementalGroups"], [1000000])

    def test_contradictions_are_refused_with_a_message(self):
        cases = [
            ("hooks:\n  dir: /h\n  hostPath: /a\n  configMap: b\n", "exclusive"),
            ("hooks:\n  configMap: b\n", "needs hooks.dir"),
            ("metrics:\n  service:\n    enabled: false\n  serviceMonitor:\n    enabled: true\n",
             "needs metrics.service.enabled"),
            ("serviceAccount:\n  create: false\n", "serviceAccount.name is required"),
        ]
        for values_text, message in cases:
            with self.subTest(values=values_text):
                self.assertIn(message, render_with(values_text, expect_failure=True))


class ChartMatchesDeployTest(unittest.TestCase):
    """The default chart and deploy/ describe the same agent."""

    @classmethod
    def setUpClass(cls):
        objects, _, _ = render()
        cls.chart = one(objects, "DaemonSet")
        (cls.plain,) = yaml_files(os.path.join(DEPLOY, "daemonset.yaml"))
        cls.chart_role = one(objects, "ClusterRole")

    def test_args(self):
        chart_args, plain_args = container(self.chart)["args"], container(self.plain)["args"]
        self.assertEqual(chart_args[:len(plain_args)], plain_args)
        self.assertEqual(set(chart_args[len(plain_args):]), CHART_EXTRA_DEFAULT_ARGS)

    def test_env_ports_probes_resources_security_mounts(self):
        for key in ("env", "ports", "livenessProbe", "readinessProbe", "resources",
                    "securityContext", "volumeMounts"):
            with self.subTest(key=key):
                self.assertEqual(container(self.chart)[key], container(self.plain)[key])

    def test_pod_security_volumes_and_update_strategy(self):
        chart_pod = self.chart["spec"]["template"]["spec"]
        plain_pod = self.plain["spec"]["template"]["spec"]
        for key in ("securityContext", "volumes", "nodeSelector", "terminationGracePeriodSeconds"):
            with self.subTest(key=key):
                self.assertEqual(chart_pod[key], plain_pod[key])
        self.assertEqual(self.chart["spec"]["updateStrategy"], self.plain["spec"]["updateStrategy"])

    def test_same_cluster_role(self):
        (plain_role, _) = yaml_files(os.path.join(DEPLOY, "rbac.yaml"))
        self.assertEqual(self.chart_role["rules"], plain_role["rules"])


class DeployManifestsTest(unittest.TestCase):
    """deploy/ on its own."""

    def test_rbac(self):
        role, binding = yaml_files(os.path.join(DEPLOY, "rbac.yaml"))
        self.assertEqual(role["kind"], "ClusterRole")
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_CLUSTER_RULES)
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount",
                                                "name": "hotplug-operator",
                                                "namespace": "hotplug-system"}])

    def test_central_lease_role_is_bound_to_the_central_account_only(self):
        docs = yaml_files(os.path.join(DEPLOY, "central", "rbac.yaml"))
        role = next(d for d in docs if d["kind"] == "Role")
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_LEASE_RULES)
        (deployment,) = yaml_files(os.path.join(DEPLOY, "central", "deployment.yaml"))
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        binding = next(d for d in docs if d["kind"] == "RoleBinding")
        self.assertEqual([s["name"] for s in binding["subjects"]], [account])
        self.assertNotEqual(account, "hotplug-operator")

    def test_central_deployment(self):
        (deployment,) = yaml_files(os.path.join(DEPLOY, "central", "deployment.yaml"))
        self.assertEqual(deployment["spec"]["replicas"], 2)
        args = container(deployment)["args"]
        self.assertIn("--leader-elect", args)
        self.assertIn("--leader-elect-namespace=$(POD_NAMESPACE)", args)
        for arg in args:
            self.assertIn(arg_name(arg), KNOWN_FLAGS, arg)

    def test_daemonset(self):
        (daemonset,) = yaml_files(os.path.join(DEPLOY, "daemonset.yaml"))
        agent = container(daemonset)
        self.assertEqual(agent["args"], [
            "--node-name=$(NODE_NAME)", "--libvirt-uri=qemu:///system",
            "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"])
        volumes = daemonset["spec"]["template"]["spec"]["volumes"]
        self.assertEqual([v["hostPath"]["path"] for v in volumes], ["/var/run/libvirt"])
        self.assertNotIn("privileged", {k for k, v in agent["securityContext"].items() if v})
        self.assertEqual(agent["securityContext"]["capabilities"], {"drop": ["ALL"]})

    def test_examples_are_valid_elastic_vms(self):
        (crd,) = yaml_files(CRD)
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        directory = os.path.join(DEPLOY, "examples")
        examples = {}
        for name in sorted(os.listdir(directory)):
            (example,) = yaml_files(os.path.join(directory, name))
            self.assertEqual(example["apiVersion"], "hotplug.dev/v1alpha1", name)
            self.assertEqual(example["kind"], "ElasticVM", name)
            self.assertEqual(validate(schema, example), [], name)
            # Agents reconcile only ElasticVMs naming their node; a sample naming none
            # would do nothing on the DaemonSet install.
            self.assertTrue(example["spec"].get("nodeName") or
                            example["metadata"].get("labels", {}).get("hotplug.dev/node"),
                            name + " names no node")
            examples[name] = example["spec"]
        self.assertGreaterEqual(len(examples), 2)
        self.assertTrue(any(s.get("suspend") for s in examples.values()))
        self.assertTrue(any(s.get("nodeName") and s.get("memory", {}).get("method") == "virtio-mem"
                            for s in examples.values()))


class CrdCopiesTest(unittest.TestCase):
    """helm and kustomize can not read crd/ from where they are, so they hold copies."""

    def test_copies_are_byte_identical_to_crd(self):
        source = read_bytes(CRD)
        for copy in (os.path.join(CHART, "crds", "hotplug.dev_elasticvms.yaml"),
                     os.path.join(DEPLOY, "crd", "hotplug.dev_elasticvms.yaml")):
            with self.subTest(copy=copy):
                self.assertTrue(read_bytes(copy) == source,
                                "%s differs from crd/; refresh it: cp %s %s"
                                % (os.path.relpath(copy, REPO), os.path.relpath(CRD, REPO),
                                   os.path.relpath(copy, REPO)))


class DashboardCopyTest(unittest.TestCase):
    """The chart's dashboard is deploy/monitoring/dashboard.json, once that exists (until
    then files/dashboard.json is a placeholder)."""

    def test_chart_dashboard_is_the_monitoring_one(self):
        source = os.path.join(DEPLOY, "monitoring", "dashboard.json")
        copy = os.path.join(CHART, "files", "dashboard.json")
        with open(copy) as handle:
            json.load(handle)  # valid JSON either way
        if not os.path.exists(source):
            self.skipTest("deploy/monitoring/dashboard.json does not exist yet")
        self.assertTrue(read_bytes(copy) == read_bytes(source),
                        "%s differs from deploy/monitoring/dashboard.json; refresh it: cp %s %s"
                        % (os.path.relpath(copy, REPO), os.path.relpath(source, REPO),
                           os.path.relpath(copy, REPO)))


class ValuesSchemaTest(unittest.TestCase):
    """values.schema.json describes every value and rejects bad ones, as helm would."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(CHART, "values.schema.json")) as handle:
            cls.schema = json.load(handle)

    def test_is_draft_07(self):
        self.assertEqual(self.schema["$schema"], "http://json-schema.org/draft-07/schema#")

    def test_defaults_and_all_toggles_are_valid(self):
        self.assertEqual(validate(self.schema, merged_values()), [])
        self.assertEqual(validate(self.schema, merged_values(ALL_TOGGLES)), [])

    def test_schema_and_values_yaml_name_the_same_keys(self):
        def paths_of_schema(schema, prefix=""):
            out = set()
            for key, sub in schema.get("properties", {}).items():
                out.add(prefix + key)
                if sub.get("additionalProperties") is False:
                    out |= paths_of_schema(sub, prefix + key + ".")
            return out

        def paths_of_values(values, schema, prefix=""):
            out = set()
            for key, value in values.items():
                out.add(prefix + key)
                sub = schema.get("properties", {}).get(key, {})
                if isinstance(value, dict) and sub.get("additionalProperties") is False:
                    out |= paths_of_values(value, sub, prefix + key + ".")
            return out

        (values,) = yaml_files(os.path.join(CHART, "values.yaml"))
        self.assertEqual(paths_of_schema(self.schema), paths_of_values(values, self.schema))

    def test_rejects_bad_values(self):
        cases = [
            ("logLevel: verbose\n", "logLevel"),
            ("workers: two\n", "workers"),
            ("workers: 0\n", "workers"),
            ("resyncPeriod: ten minutes\n", "resyncPeriod"),
            ("metrics:\n  port: 70000\n", "metrics.port"),
            ("metrics:\n  servicemonitor:\n    enabled: true\n", "servicemonitor"),
            ("image:\n  pullPolicy: Sometimes\n", "image.pullPolicy"),
            ("libvirt:\n  socketDir: run/libvirt\n", "libvirt.socketDir"),
            ("libvirt:\n  socketGroup: libvirt\n", "libvirt.socketGroup"),
            ("leaderElection:\n  enabled: yes please\n", "leaderElection.enabled"),
            ("hooks:\n  timeout: 30\n", "hooks.timeout"),
            ("tolerations: {}\n", "tolerations"),
            ("unknownTopLevel: 1\n", "unknownTopLevel"),
        ]
        for values_text, where in cases:
            with self.subTest(values=values_text):
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
                    handle.write(values_text)
                try:
                    errors = validate(self.schema, merged_values(handle.name))
                finally:
                    os.unlink(handle.name)
                self.assertTrue(errors, "accepted " + values_text)
                self.assertIn(where, "\n".join(errors))

    def test_validator_refuses_keywords_it_does_not_know(self):
        with self.assertRaises(ValueError):
            validate({"oneOf": []}, 1)


class KustomizeTest(unittest.TestCase):
    """deploy/ builds with the real kubectl (offline: build and parse, no server)."""

    def kustomize(self, directory):
        if not KUBECTL:
            self.skipTest("kubectl not given")
        result = run([KUBECTL, "kustomize", directory])
        self.assertEqual(result.returncode, 0, result.stderr)
        return yaml_files("-", stdin=result.stdout)

    def test_base_builds(self):
        objects = self.kustomize(DEPLOY)
        self.assertEqual(kinds(objects), collections.Counter({
            "CustomResourceDefinition": 1, "Namespace": 1, "ServiceAccount": 1,
            "ClusterRole": 1, "ClusterRoleBinding": 1, "DaemonSet": 1, "Service": 1}))
        crd = one(objects, "CustomResourceDefinition")
        self.assertEqual(crd["metadata"]["name"], "elasticvms.hotplug.dev")

    def test_central_builds(self):
        objects = self.kustomize(os.path.join(DEPLOY, "central"))
        self.assertEqual(kinds(objects), collections.Counter({
            "ServiceAccount": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
            "Deployment": 1}))
        for obj in objects:
            if obj["kind"] != "ClusterRoleBinding":
                self.assertEqual(obj["metadata"]["namespace"], "hotplug-system")

    def kubectl_decodes(self, manifest):
        """Names kubectl gives the objects of manifest, decoded locally (no server)."""
        with tempfile.TemporaryDirectory() as directory:
            kubeconfig = os.path.join(directory, "kubeconfig")
            with open(kubeconfig, "w") as handle:
                handle.write("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
            # `label --local` reads and decodes every document and prints its
            # kind/name without contacting a server; a YAML error or a document without
            # apiVersion, kind or name fails it.
            result = run([KUBECTL, "--kubeconfig", kubeconfig, "label", "--local",
                          "--dry-run=client", "-o", "name", "-f", manifest, "checked=true"])
        self.assertEqual(result.returncode, 0, result.stderr)
        return [line for line in result.stdout.splitlines() if line]

    def test_chart_output_is_read_by_kubectl(self):
        if not KUBECTL:
            self.skipTest("kubectl not given")
        result = run([RENDER, "-chart", CHART, "-f", ALL_TOGGLES, "-include-crds"])
        self.assertEqual(result.returncode, 0, result.stderr)
        with tempfile.TemporaryDirectory() as directory:
            manifest = os.path.join(directory, "chart.yaml")
            with open(manifest, "w") as handle:
                handle.write(result.stdout)
            names = self.kubectl_decodes(manifest)
            objects = yaml_files(manifest)
        self.assertEqual(len(names), len(objects))
        self.assertIn("daemonset.apps/hotplug-operator", names)
        self.assertIn("customresourcedefinition.apiextensions.k8s.io/elasticvms.hotplug.dev", names)

    def test_plain_manifests_and_examples_are_read_by_kubectl(self):
        if not KUBECTL:
            self.skipTest("kubectl not given")
        for directory in (DEPLOY, os.path.join(DEPLOY, "central"), os.path.join(DEPLOY, "examples")):
            for name in sorted(os.listdir(directory)):
                if name.endswith(".yaml") and name != "kustomization.yaml":
                    with self.subTest(manifest=name):
                        path = os.path.join(directory, name)
                        self.assertEqual(len(self.kubectl_decodes(path)), len(yaml_files(path)))


class ExamplesApplyTest(unittest.TestCase):
    """A user's first steps against the test API server (tests/apiserver), which validates
    against the CRD's schema as kube does: apply the CRD copy, then the examples."""

    def test_crd_and_examples_apply_and_list(self):
        if not KUBECTL:
            self.skipTest("kubectl not given")
        sys.path.insert(0, os.path.join(REPO, "tests", "apiserver"))
        sys.dont_write_bytecode = True  # leave no __pycache__ in another folder
        from launch import ApiServerProcess  # pylint: disable=import-outside-toplevel

        server = ApiServerProcess()
        self.addCleanup(lambda: server.process and server.process.stdout and
                        server.process.stdout.close())
        with tempfile.TemporaryDirectory() as directory, server as api:
            kubeconfig = os.path.join(directory, "kubeconfig")
            result = run([sys.executable, os.path.join(REPO, "tests", "apiserver", "kubeconfig.py"),
                          "--port", str(api.port), "--out", kubeconfig])
            self.assertEqual(result.returncode, 0, result.stderr)
            env = dict(os.environ, KUBECONFIG=kubeconfig,
                       KUBECACHEDIR=os.path.join(directory, "cache"))

            def kubectl(*args):
                outcome = run([KUBECTL, *args], env=env, timeout=60)
                self.assertEqual(outcome.returncode, 0,
                                 "kubectl %s: %s" % (" ".join(args), outcome.stderr))
                return outcome.stdout

            kubectl("apply", "-f", os.path.join(DEPLOY, "crd", "hotplug.dev_elasticvms.yaml"))
            applied = kubectl("apply", "-f", os.path.join(DEPLOY, "examples"))
            examples = [n for n in os.listdir(os.path.join(DEPLOY, "examples")) if n.endswith(".yaml")]
            self.assertEqual(applied.count(" created"), len(examples), applied)

            listed = json.loads(kubectl("get", "elasticvms", "-A", "-o", "json"))
            self.assertEqual(len(listed["items"]), len(examples))
            for item in listed["items"]:
                # The CRD's defaults were applied, so the schema really was in force.
                self.assertIn(item["spec"]["cpu"]["guestOnline"], ("auto", "agent", "none"))
                self.assertIn("persist", item["spec"])
            table = kubectl("get", "evm", "-A")
            for column in ("DOMAIN", "NODE", "VCPUS", "READY"):
                self.assertIn(column, table.splitlines()[0])


class BinaryFlagsTest(unittest.TestCase):
    """Every flag the manifests and the chart pass is one the built binary knows: an
    unknown flag makes it exit 2, and the pods would crash-loop."""

    @classmethod
    def setUpClass(cls):
        if not OPERATOR:
            raise unittest.SkipTest("no --binary given")
        result = run([OPERATOR, "--help"], timeout=30)
        cls.known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout + result.stderr))
        if not cls.known:
            raise AssertionError("`%s --help` listed no flags:\n%s%s"
                                 % (OPERATOR, result.stdout, result.stderr))

    def assert_known(self, args, where):
        unknown = sorted({arg_name(a) for a in args} - self.known)
        self.assertEqual(unknown, [], "%s passes flags the binary does not know" % where)

    def test_plain_manifests(self):
        for path in (os.path.join(DEPLOY, "daemonset.yaml"),
                     os.path.join(DEPLOY, "central", "deployment.yaml")):
            (workload,) = yaml_files(path)
            self.assert_known(container(workload)["args"], os.path.relpath(path, REPO))

    def test_chart(self):
        for overrides in ((), (ALL_TOGGLES,)):
            objects, _, _ = render(*overrides)
            for obj in objects:
                if obj["kind"] in ("DaemonSet", "Deployment"):
                    self.assert_known(container(obj)["args"],
                                      "chart %s with %s" % (obj["kind"], overrides or "defaults"))


class BinarySmokeTest(unittest.TestCase):
    """The built binary, started with the chart's DaemonSet args, answers the probes the
    chart declares and serves metrics. Against the test API server and the fake hypervisor
    (no libvirtd here), on ports chosen by the kernel."""

    def test_probes_and_metrics_answer(self):
        if not OPERATOR:
            self.skipTest("no --binary given")
        sys.path.insert(0, os.path.join(REPO, "tests", "apiserver"))
        sys.dont_write_bytecode = True
        from launch import ApiServerProcess  # pylint: disable=import-outside-toplevel

        objects, _, _ = render()
        agent = container(one(objects, "DaemonSet"))
        args = []
        for arg in agent["args"]:
            name = arg_name(arg)
            if name in ("--metrics-bind-address", "--health-probe-bind-address"):
                arg = name + "=127.0.0.1:0"
            elif name == "--node-name":
                arg = "--node-name=node-a"  # what kube makes of $(NODE_NAME)
            args.append(arg)

        server = ApiServerProcess(extra_args=["--crd", CRD])
        self.addCleanup(lambda: server.process and server.process.stdout and
                        server.process.stdout.close())
        with tempfile.TemporaryDirectory() as directory, server as api:
            kubeconfig = os.path.join(directory, "kubeconfig")
            result = run([sys.executable, os.path.join(REPO, "tests", "apiserver", "kubeconfig.py"),
                          "--port", str(api.port), "--out", kubeconfig])
            self.assertEqual(result.returncode, 0, result.stderr)
            process = subprocess.Popen([OPERATOR, *args, "--kubeconfig", kubeconfig,
                                        "--hypervisor=fake"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            log_lines = []
            reader = threading.Thread(target=lambda: log_lines.extend(process.stderr), daemon=False)
            reader.start()
            try:
                ports = self.wait_for_ports(log_lines, process)
                health = "http://127.0.0.1:%d" % ports["health server listening"]
                for probe in ("livenessProbe", "readinessProbe"):
                    path = agent[probe]["httpGet"]["path"]
                    self.assertEqual(self.poll_status(health + path), 200, "%s %s" % (probe, path))
                metrics = "http://127.0.0.1:%d/metrics" % ports["metrics server listening"]
                self.assertEqual(self.poll_status(metrics), 200)
                with urllib.request.urlopen(metrics, timeout=5) as response:
                    self.assertIn("# TYPE", response.read().decode())
            finally:
                process.terminate()
                code = process.wait(timeout=30)
                reader.join(timeout=10)
                process.stderr.close()
            self.assertEqual(code, 0, "".join(log_lines[-20:]))

    @staticmethod
    def wait_for_ports(log_lines, process, timeout_s=20.0):
        """Ports of the servers, from their "... listening" JSON log lines."""
        deadline = time.monotonic() + timeout_s
        wanted = ("health server listening", "metrics server listening")
        while time.monotonic() < deadline:
            ports = {}
            for line in list(log_lines):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") in wanted:
                    ports[entry["msg"]] = int(entry["port"])
            if len(ports) == len(wanted):
                return ports
            if process.poll() is not None:
                raise AssertionError("the operator exited: " + "".join(log_lines[-20:]))
            time.sleep(0.05)
        raise AssertionError("no listening ports logged: " + "".join(log_lines[-20:]))

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
    global RENDER, KUBECTL, OPERATOR
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--render", required=True, help="the renderer built from render.go")
    parser.add_argument("--kubectl", help="kubectl, for the kustomize tests")
    parser.add_argument("--binary", help="the built hotplug-operator, for BinaryFlagsTest")
    args, rest = parser.parse_known_args()
    RENDER = os.path.abspath(args.render)
    KUBECTL = args.kubectl
    OPERATOR = args.binary
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Specification of what hotplug-operator ships: the Helm chart, the plain manifests in
deploy/, and how the two agree. No server: the real helm renders (`helm template`) and lints
(`helm lint --strict`) the chart and checks values against values.schema.json; kubectl reads
the YAML (see chart_lib.py), so this needs only Python's standard library. The real-server
groups (install, upgrade, uninstall) are in chart_server_test.py. Run a group with

    python3 tests/chart/chart_test.py [--helm helm] [--kubectl kubectl] [--binary B] [Group ...]
"""

import collections
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
import chart_lib  # noqa: E402
from chart_lib import (ALL_TOGGLES, CHART, CRD, DEPLOY,  # noqa: E402
                       EXPECTED_AGENT_LEASE_READER_RULES, EXPECTED_AGENT_LEASE_RULES,
                       EXPECTED_CENTRAL_CLUSTER_RULES, EXPECTED_CLUSTER_RULES,
                       EXPECTED_LEASE_RULES, REPO, Tools, arg_name, container, kinds, lint,
                       named, of_component, one, read_bytes, rules_by_resource, template,
                       template_with, yaml_objects)

# Flags the binary accepts; an argument outside this list is a typo that would stop it.
KNOWN_FLAGS = {
    "--kubeconfig", "--namespace", "--node-name", "--workers", "--resync-period",
    "--agent-lease-namespace", "--assign-nodes",
    "--leader-elect", "--leader-elect-namespace", "--leader-elect-id",
    "--leader-elect-lease-duration", "--leader-elect-renew-deadline",
    "--leader-elect-retry-period", "--health-probe-bind-address", "--metrics-bind-address",
    "--libvirt-uri", "--hooks-dir", "--hook-timeout", "--log-level", "--standalone",
}
# What the chart passes beyond deploy/daemonset.yaml, with default values: each equals the
# binary's own default, so the default chart and the plain manifest behave the same.
CHART_EXTRA_DEFAULT_ARGS = {"--workers=2", "--resync-period=10m", "--log-level=info"}

# Single values changed (ChartValueCasesTest renders each; HelmLintTest lints each).
VALUE_CASES = {
    "service-off": "metrics:\n  service:\n    enabled: false\n",
    "existing-account": "serviceAccount:\n  create: false\n  name: vm-admins\n",
    "image": "image:\n  repository: registry.example/hotplug\n  tag: v9\n",
    "fullname": "fullnameOverride: hp\n",
    "host-hooks": "hooks:\n  dir: /hooks\n  hostPath: /etc/hotplug/hooks\n",
    "large-gid": "libvirt:\n  socketGroup: 1000000\n",
    "rules-only": "metrics:\n  prometheusRule:\n    enabled: true\n",
    "no-central": "central:\n  enabled: false\n",
    "remote-agent": "remoteAgents:\n  - nodeName: remote.example\n"
                    "    libvirtUri: qemu+tls://remote.example/system\n",
    "own-lease-namespace": "agentLeases:\n  namespace: node-leases\n  createNamespace: false\n",
}
# Where the default chart (release namespace hotplug-system) and deploy/ keep the agents'
# Leases: apart from the central's Lease, which is in the release namespace.
AGENT_LEASES = "hotplug-system-agents"


def central_role(objects):
    """The central's Role on its own Lease (by name)."""
    return named(objects, "Role", "-leader-election")


def central_reader_role(objects):
    """The central's Role that lists the agents' Leases."""
    return named(objects, "Role", "-agent-leases-reader")


def agent_lease_role(objects):
    return of_component(objects, "Role", "agent")


def account_of(workload):
    return workload["spec"]["template"]["spec"]["serviceAccountName"]


def subjects(objects, kind, component):
    """The ServiceAccounts every `kind` binding of `component` names, each once."""
    bindings = [o for o in objects if o["kind"] == kind and
                o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]
    if not bindings:
        raise AssertionError("no %s of component %s" % (kind, component))
    return sorted({s["name"] for binding in bindings for s in binding["subjects"]})


class HelmLintTest(unittest.TestCase):
    """`helm lint --strict` passes, with no warning, for every values set the tests render."""

    def assert_lints_clean(self, *values_files):
        result = lint(*values_files)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("0 chart(s) failed", result.stdout)
        for level in ("[WARNING]", "[ERROR]"):
            self.assertNotIn(level, result.stdout)

    def test_defaults(self):
        self.assert_lints_clean()

    def test_all_toggles(self):
        self.assert_lints_clean(ALL_TOGGLES)

    def test_value_cases(self):
        with tempfile.TemporaryDirectory(dir=Tools.home) as directory:
            for name, values_text in VALUE_CASES.items():
                with self.subTest(case=name):
                    self.assert_lints_clean(chart_lib.write_temp(directory, name + ".yaml",
                                                                 values_text))

    def test_a_broken_template_fails_the_lint(self):
        # The lint is not a formality: the chart with one template cut short fails it.
        with tempfile.TemporaryDirectory(dir=Tools.home) as directory:
            broken = os.path.join(directory, "hotplug-operator")
            shutil.copytree(CHART, broken)
            service = os.path.join(broken, "templates", "service.yaml")
            with open(service, encoding="utf-8") as handle:
                text = handle.read()
            with open(service, "w", encoding="utf-8") as handle:
                handle.write(text.replace("{{- end }}", ""))
            result = chart_lib.helm("lint", "--strict", broken)
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertIn("service.yaml", result.stdout + result.stderr)


class ChartDefaultsTest(unittest.TestCase):
    """The chart with values.yaml alone: the per-node agents and the central node assigner,
    nothing optional."""

    @classmethod
    def setUpClass(cls):
        cls.objects = template().objects

    def test_renders_exactly_the_base_objects(self):
        self.assertEqual(kinds(self.objects), collections.Counter({
            "Namespace": 1, "ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2,
            "Role": 3, "RoleBinding": 3, "DaemonSet": 1, "Deployment": 1, "Service": 1}))

    def test_cluster_role_grants_exactly_what_the_operator_calls(self):
        role = of_component(self.objects, "ClusterRole", "agent")
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_CLUSTER_RULES)

    def test_each_part_gets_exactly_the_verbs_it_uses(self):
        central = of_component(self.objects, "ClusterRole", "central")
        self.assertEqual(rules_by_resource(central["rules"]), EXPECTED_CENTRAL_CLUSTER_RULES)
        self.assertEqual(rules_by_resource(agent_lease_role(self.objects)["rules"]),
                         EXPECTED_AGENT_LEASE_RULES)
        role = central_role(self.objects)
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_LEASE_RULES)
        self.assertEqual(rules_by_resource(central_reader_role(self.objects)["rules"]),
                         EXPECTED_AGENT_LEASE_READER_RULES)
        for rule in role["rules"]:
            if set(rule["verbs"]) & {"get", "update"}:
                self.assertEqual(rule.get("resourceNames"), ["hotplug-operator"])
        # Each binding names its part's ServiceAccount only.
        agent_account = account_of(one(self.objects, "DaemonSet"))
        central_account = account_of(one(self.objects, "Deployment"))
        self.assertNotEqual(agent_account, central_account)
        for kind in ("ClusterRoleBinding", "RoleBinding"):
            self.assertEqual(subjects(self.objects, kind, "agent"), [agent_account])
            self.assertEqual(subjects(self.objects, kind, "central"), [central_account])

    def test_central_deployment_assigns_nodes_and_opens_no_hypervisor(self):
        deployment = one(self.objects, "Deployment")
        self.assertEqual(deployment["spec"]["replicas"], 2)
        args = container(deployment)["args"]
        self.assertEqual(args[:8], [
            "--assign-nodes", "--agent-lease-namespace=" + AGENT_LEASES, "--leader-elect",
            "--leader-elect-namespace=hotplug-system", "--leader-elect-id=hotplug-operator",
            "--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s",
            "--leader-elect-retry-period=2s"])
        for absent in ("--libvirt-uri", "--node-name", "--hooks-dir"):
            self.assertFalse(any(a.startswith(absent) for a in args), absent)
        pod = deployment["spec"]["template"]["spec"]
        self.assertNotIn("volumes", pod)
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])

    def test_agent_args(self):
        args = container(one(self.objects, "DaemonSet"))["args"]
        self.assertEqual(args, [
            "--node-name=$(NODE_NAME)", "--libvirt-uri=qemu:///system",
            "--agent-lease-namespace=" + AGENT_LEASES,
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
        # All but the agents' Lease namespace and the Roles there.
        in_agent_leases = {"hotplug-operator-agent-lease", "hotplug-operator-agent-leases-reader"}
        for obj in self.objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "Namespace"):
                continue
            expected = (AGENT_LEASES if obj["metadata"]["name"] in in_agent_leases
                        else "hotplug-system")
            self.assertEqual(obj["metadata"].get("namespace"), expected,
                             obj["kind"] + " " + obj["metadata"]["name"])

    def test_the_agents_leases_are_apart_from_the_central_s(self):
        # An agent may write any Lease where it renews its own (node names are not known at
        # install): not where the central's leader-election Lease is.
        namespace = one(self.objects, "Namespace")
        self.assertEqual(namespace["metadata"]["name"], AGENT_LEASES)
        self.assertEqual(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
                         "restricted")
        self.assertEqual(agent_lease_role(self.objects)["metadata"]["namespace"], AGENT_LEASES)
        self.assertEqual(central_role(self.objects)["metadata"]["namespace"], "hotplug-system")
        self.assertEqual(central_reader_role(self.objects)["metadata"]["namespace"], AGENT_LEASES)
        agent_bindings = [o for o in self.objects if o["kind"] == "RoleBinding" and
                          any(s["name"] == "hotplug-operator" for s in o["subjects"])]
        self.assertEqual([b["metadata"]["namespace"] for b in agent_bindings], [AGENT_LEASES])

    def test_every_object_carries_the_standard_labels(self):
        for obj in self.objects:
            labels = obj["metadata"]["labels"]
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                        "app.kubernetes.io/managed-by", "helm.sh/chart"):
                self.assertIn(key, labels, obj["kind"])
            self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm", obj["kind"])

    def test_crds_come_only_with_include_crds(self):
        # helm template leaves crds/ out unless asked; install applies it (server tests).
        self.assertNotIn("CustomResourceDefinition", kinds(self.objects))
        with_crds = template(extra=["--include-crds"])
        crd = one(with_crds.objects, "CustomResourceDefinition")
        self.assertEqual(crd["metadata"]["name"], "elasticvms.hotplug.dev")
        self.assertEqual(crd, one(yaml_objects(path=CRD), "CustomResourceDefinition"))


class ChartAllTogglesTest(unittest.TestCase):
    """The chart with every optional feature on (values-all-toggles.yaml)."""

    @classmethod
    def setUpClass(cls):
        cls.rendering = template(ALL_TOGGLES)
        cls.objects = cls.rendering.objects

    def test_renders_every_optional_object(self):
        self.assertEqual(kinds(self.objects), collections.Counter({
            "Namespace": 1, "ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2,
            "Role": 3, "RoleBinding": 3, "DaemonSet": 1, "Deployment": 2, "Service": 1,
            "ServiceMonitor": 1, "PrometheusRule": 1, "ConfigMap": 1}))

    def test_every_template_renders_something_with_one_of_the_value_sets(self):
        templates = {name for name in os.listdir(os.path.join(CHART, "templates"))
                     if name.endswith(".yaml")}
        sources = {os.path.basename(source) for source in self.rendering.sources}
        self.assertEqual(templates - sources, set())

    def test_rbac_is_still_exactly_what_each_part_calls(self):
        self.assertEqual(
            rules_by_resource(of_component(self.objects, "ClusterRole", "agent")["rules"]),
            EXPECTED_CLUSTER_RULES)
        self.assertEqual(
            rules_by_resource(of_component(self.objects, "ClusterRole", "central")["rules"]),
            EXPECTED_CENTRAL_CLUSTER_RULES)
        self.assertEqual(rules_by_resource(agent_lease_role(self.objects)["rules"]),
                         EXPECTED_AGENT_LEASE_RULES)
        role = central_role(self.objects)
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_LEASE_RULES)
        self.assertEqual(rules_by_resource(central_reader_role(self.objects)["rules"]),
                         EXPECTED_AGENT_LEASE_READER_RULES)
        for rule in role["rules"]:
            if set(rule["verbs"]) & {"get", "update"}:
                self.assertEqual(rule.get("resourceNames"), ["hotplug-central"])

    def test_remote_agents_are_agents_and_only_the_central_may_label(self):
        agent_account = account_of(one(self.objects, "DaemonSet"))
        central_account = account_of(of_component(self.objects, "Deployment", "central"))
        remote_account = account_of(of_component(self.objects, "Deployment", "remote-agent"))
        self.assertEqual(remote_account, agent_account)
        self.assertNotEqual(central_account, agent_account)
        for kind in ("ClusterRoleBinding", "RoleBinding"):
            self.assertEqual(subjects(self.objects, kind, "agent"), [agent_account])
            self.assertEqual(subjects(self.objects, kind, "central"), [central_account])

    def test_central_deployment(self):
        deployment = of_component(self.objects, "Deployment", "central")
        self.assertEqual(deployment["spec"]["replicas"], 3)
        args = container(deployment)["args"]
        for expected in ("--assign-nodes", "--agent-lease-namespace=" + AGENT_LEASES,
                         "--leader-elect", "--leader-elect-namespace=hotplug-system",
                         "--leader-elect-id=hotplug-central",
                         "--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s",
                         "--leader-elect-retry-period=2s",
                         # The agents' scope: it labels what they watch.
                         "--namespace=vms"):
            self.assertIn(expected, args)
        for absent in ("--libvirt-uri", "--node-name", "--hooks-dir"):
            self.assertFalse(any(a.startswith(absent) for a in args), absent)
        pod = deployment["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotIn("volumes", pod)
        security = container(deployment)["securityContext"]
        self.assertEqual(security["capabilities"], {"drop": ["ALL"]})
        self.assertTrue(security["readOnlyRootFilesystem"])
        self.assertFalse(security["allowPrivilegeEscalation"])

    def test_remote_agent(self):
        deployment = of_component(self.objects, "Deployment", "remote-agent")
        self.assertEqual(deployment["spec"]["replicas"], 1)
        self.assertEqual(deployment["spec"]["strategy"], {"type": "Recreate"})
        args = container(deployment)["args"]
        self.assertEqual(args[:3], [
            "--node-name=hypervisor-remote-1",
            "--libvirt-uri=qemu+tls://hypervisor.example/system?pkipath="
            "/etc/hotplug-operator/libvirt-pki",
            "--agent-lease-namespace=" + AGENT_LEASES])
        self.assertIn("--namespace=vms", args)
        self.assertIn("--hooks-dir=/etc/hotplug-operator/hooks", args)  # from the ConfigMap
        pod = deployment["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(volumes["libvirt-pki"]["secret"]["secretName"],
                         "hotplug-operator-libvirt-tls")
        self.assertEqual(volumes["hooks"]["configMap"]["name"], "hotplug-hooks")
        self.assertFalse(any("hostPath" in v for v in pod["volumes"]))

    def test_every_arg_is_a_known_flag(self):
        for obj in self.objects:
            if obj["kind"] in ("DaemonSet", "Deployment"):
                for arg in container(obj)["args"]:
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
        self.assertEqual(pod["imagePullSecrets"], [{"name": "registry-credentials"}])
        self.assertEqual(daemonset["spec"]["template"]["metadata"]["annotations"],
                         {"example.com/team": "virt"})

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


class ChartValueCasesTest(unittest.TestCase):
    """Single values changed, and contradictions the chart must refuse."""

    def test_metrics_service_can_be_turned_off(self):
        objects = template_with(VALUE_CASES["service-off"]).objects
        self.assertNotIn("Service", kinds(objects))

    def test_existing_service_account(self):
        objects = template_with(VALUE_CASES["existing-account"]).objects
        self.assertNotIn("ServiceAccount", kinds(objects))
        pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], "vm-admins")

    def test_image_tag_defaults_to_app_version_and_can_be_set(self):
        default_image = container(one(template().objects, "DaemonSet"))["image"]
        self.assertEqual(default_image, "hotplug-operator:0.1.0")
        objects = template_with(VALUE_CASES["image"]).objects
        self.assertEqual(container(one(objects, "DaemonSet"))["image"],
                         "registry.example/hotplug:v9")

    def test_fullname_override_renames_everything(self):
        objects = template_with(VALUE_CASES["fullname"]).objects
        self.assertEqual(one(objects, "DaemonSet")["metadata"]["name"], "hp")
        self.assertEqual(one(objects, "Service")["metadata"]["name"], "hp-metrics")

    def test_release_name_prefixes_names_unless_it_says_hotplug_operator(self):
        objects = template(release="edge").objects
        self.assertEqual(one(objects, "DaemonSet")["metadata"]["name"], "edge-hotplug-operator")
        self.assertEqual(of_component(objects, "ClusterRole", "agent")["metadata"]["labels"]
                         ["app.kubernetes.io/instance"], "edge")
        self.assertEqual(one(objects, "Deployment")["metadata"]["name"],
                         "edge-hotplug-operator-central")

    def test_hooks_from_the_host(self):
        objects = template_with(VALUE_CASES["host-hooks"]).objects
        agent = one(objects, "DaemonSet")
        volumes = {v["name"]: v for v in agent["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["hooks"]["hostPath"]["path"], "/etc/hotplug/hooks")
        self.assertIn("--hooks-dir=/hooks", container(agent)["args"])
        # The central replicas reconcile nothing: no hooks for them.
        central = one(objects, "Deployment")
        self.assertFalse(any(a.startswith("--hooks-dir") for a in container(central)["args"]))

    def test_central_can_be_turned_off(self):
        objects = template_with(VALUE_CASES["no-central"]).objects
        self.assertNotIn("Deployment", kinds(objects))
        for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                     "RoleBinding"):
            self.assertEqual(kinds(objects)[kind], 1, kind)
        self.assertEqual(rules_by_resource(one(objects, "Role")["rules"]),
                         EXPECTED_AGENT_LEASE_RULES)

    def test_the_agents_lease_namespace_can_be_one_that_exists(self):
        objects = template_with(VALUE_CASES["own-lease-namespace"]).objects
        self.assertNotIn("Namespace", kinds(objects))
        self.assertEqual(agent_lease_role(objects)["metadata"]["namespace"], "node-leases")
        self.assertEqual(central_reader_role(objects)["metadata"]["namespace"], "node-leases")
        self.assertEqual(central_role(objects)["metadata"]["namespace"], "hotplug-system")
        for workload in (one(objects, "DaemonSet"), one(objects, "Deployment")):
            self.assertIn("--agent-lease-namespace=node-leases", container(workload)["args"])

    def test_remote_agent_without_tls_mounts_nothing(self):
        objects = template_with(VALUE_CASES["remote-agent"]).objects
        remote = of_component(objects, "Deployment", "remote-agent")
        self.assertEqual(remote["metadata"]["name"], "hotplug-operator-remote-remote-example")
        self.assertIn("--node-name=remote.example", container(remote)["args"])
        self.assertNotIn("volumes", remote["spec"]["template"]["spec"])
        self.assertNotIn("volumeMounts", container(remote))

    def test_large_socket_group_stays_an_integer(self):
        # Values are float64 in helm; printed plainly, 1000000 would become 1e+06.
        objects = template_with(VALUE_CASES["large-gid"]).objects
        pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
        self.assertEqual(pod["securityContext"]["supplementalGroups"], [1000000])

    def test_prometheus_rule_spec_is_deploy_monitoring_s(self):
        # The chart's alerts (files/prometheus-rules.yaml through tpl) are the plain ones.
        rule = one(template_with(VALUE_CASES["rules-only"]).objects, "PrometheusRule")
        (plain,) = yaml_objects(path=os.path.join(DEPLOY, "monitoring", "prometheusrule.yaml"))
        self.assertEqual(rule["spec"], plain["spec"],
                         "charts/hotplug-operator/files/prometheus-rules.yaml renders to a "
                         "different spec than deploy/monitoring/prometheusrule.yaml")

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
                self.assertIn(message, template_with(values_text, expect_failure=True))

    def test_kubernetes_older_than_kube_version_is_refused(self):
        # Chart.yaml's kubeVersion: >=1.25.0-0.
        message = template_with("{}\n", expect_failure=True, extra=["--kube-version", "1.24.9"])
        self.assertIn("kubeVersion", message)
        template(extra=["--kube-version", "1.25.0"])


class ChartMatchesDeployTest(unittest.TestCase):
    """The default chart and deploy/ describe the same agent."""

    @classmethod
    def setUpClass(cls):
        objects = template().objects
        cls.chart = one(objects, "DaemonSet")
        (cls.plain,) = yaml_objects(path=os.path.join(DEPLOY, "daemonset.yaml"))
        cls.chart_role = of_component(objects, "ClusterRole", "agent")
        cls.objects = objects

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
        docs = yaml_objects(path=os.path.join(DEPLOY, "rbac.yaml"))
        plain_role = next(d for d in docs if d["kind"] == "ClusterRole")
        self.assertEqual(self.chart_role["rules"], plain_role["rules"])
        plain_lease_role = next(d for d in docs if d["kind"] == "Role")
        self.assertEqual(agent_lease_role(self.objects)["rules"], plain_lease_role["rules"])

    def test_same_central(self):
        docs = yaml_objects(path=os.path.join(DEPLOY, "central", "rbac.yaml"))
        for kind, suffix in (("ClusterRole", "-central"), ("Role", "-leader-election"),
                             ("Role", "-agent-leases-reader")):
            with self.subTest(kind=kind, name=suffix):
                plain = named(docs, kind, suffix)
                chart = named(self.objects, kind, suffix)
                self.assertEqual(chart["rules"], plain["rules"])
                self.assertEqual(chart["metadata"].get("namespace"),
                                 plain["metadata"].get("namespace"))
        (plain_deployment,) = yaml_objects(path=os.path.join(DEPLOY, "central",
                                                             "deployment.yaml"))
        chart_args = container(one(self.objects, "Deployment"))["args"]
        plain_args = [a.replace("$(POD_NAMESPACE)", "hotplug-system")
                      for a in container(plain_deployment)["args"]]
        # The chart passes the lease timings and the shared flags beyond deploy/'s.
        self.assertEqual(set(plain_args) - set(chart_args), set())
        self.assertEqual(plain_deployment["spec"]["replicas"],
                         one(self.objects, "Deployment")["spec"]["replicas"])


class DeployManifestsTest(unittest.TestCase):
    """deploy/ on its own (the examples against the real server's schema check are in
    chart_server_test.py's ExamplesApplyTest)."""

    def test_rbac(self):
        role, binding, lease_role, lease_binding = yaml_objects(
            path=os.path.join(DEPLOY, "rbac.yaml"))
        self.assertEqual([d["kind"] for d in (role, binding, lease_role, lease_binding)],
                         ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"])
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_CLUSTER_RULES)
        self.assertEqual(rules_by_resource(lease_role["rules"]), EXPECTED_AGENT_LEASE_RULES)
        self.assertEqual(lease_role["metadata"]["namespace"], AGENT_LEASES)
        self.assertEqual(lease_binding["metadata"]["namespace"], AGENT_LEASES)
        for bound in (binding, lease_binding):
            self.assertEqual(bound["subjects"], [{"kind": "ServiceAccount",
                                                  "name": "hotplug-operator",
                                                  "namespace": "hotplug-system"}])

    def test_central_rbac_is_bound_to_the_central_account_only(self):
        docs = yaml_objects(path=os.path.join(DEPLOY, "central", "rbac.yaml"))
        role = named(docs, "Role", "-leader-election")
        self.assertEqual(rules_by_resource(role["rules"]), EXPECTED_LEASE_RULES)
        self.assertEqual(role["metadata"]["namespace"], "hotplug-system")
        reader = named(docs, "Role", "-agent-leases-reader")
        self.assertEqual(rules_by_resource(reader["rules"]), EXPECTED_AGENT_LEASE_READER_RULES)
        self.assertEqual(reader["metadata"]["namespace"], AGENT_LEASES)
        cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
        self.assertEqual(rules_by_resource(cluster_role["rules"]),
                         EXPECTED_CENTRAL_CLUSTER_RULES)
        (deployment,) = yaml_objects(path=os.path.join(DEPLOY, "central", "deployment.yaml"))
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
        self.assertEqual(len(bindings), 3)
        for binding in bindings:
            self.assertEqual([s["name"] for s in binding["subjects"]], [account])
        self.assertNotEqual(account, "hotplug-operator")

    def test_central_deployment(self):
        (deployment,) = yaml_objects(path=os.path.join(DEPLOY, "central", "deployment.yaml"))
        self.assertEqual(deployment["spec"]["replicas"], 2)
        args = container(deployment)["args"]
        for expected in ("--assign-nodes", "--agent-lease-namespace=" + AGENT_LEASES,
                         "--leader-elect", "--leader-elect-namespace=$(POD_NAMESPACE)"):
            self.assertIn(expected, args)
        self.assertFalse(any(a.startswith("--libvirt-uri") for a in args))
        self.assertNotIn("volumes", deployment["spec"]["template"]["spec"])
        for arg in args:
            self.assertIn(arg_name(arg), KNOWN_FLAGS, arg)

    def test_daemonset(self):
        (daemonset,) = yaml_objects(path=os.path.join(DEPLOY, "daemonset.yaml"))
        agent = container(daemonset)
        self.assertEqual(agent["args"], [
            "--node-name=$(NODE_NAME)", "--libvirt-uri=qemu:///system",
            "--agent-lease-namespace=" + AGENT_LEASES,
            "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"])
        volumes = daemonset["spec"]["template"]["spec"]["volumes"]
        self.assertEqual([v["hostPath"]["path"] for v in volumes], ["/var/run/libvirt"])
        self.assertNotIn("privileged", {k for k, v in agent["securityContext"].items() if v})
        self.assertEqual(agent["securityContext"]["capabilities"], {"drop": ["ALL"]})

    def test_examples_are_elastic_vms_naming_a_node(self):
        directory = os.path.join(DEPLOY, "examples")
        examples = {}
        for name in sorted(os.listdir(directory)):
            (example,) = yaml_objects(path=os.path.join(directory, name))
            self.assertEqual(example["apiVersion"], "hotplug.dev/v1alpha1", name)
            self.assertEqual(example["kind"], "ElasticVM", name)
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
    """values.schema.json describes every value and helm rejects bad ones with it."""

    # Bad values and the line helm prints for each ("- <where>: <why>").
    BAD_VALUES = [
        ("logLevel: verbose\n", "- logLevel: "),
        ("workers: two\n", "- workers: Invalid type"),
        ("workers: 0\n", "- workers: Must be greater than or equal to 1"),
        ("resyncPeriod: ten minutes\n", "- resyncPeriod: Does not match pattern"),
        ("metrics:\n  port: 70000\n", "- metrics.port: Must be less than or equal to 65535"),
        ("metrics:\n  servicemonitor:\n    enabled: true\n",
         "- metrics: Additional property servicemonitor is not allowed"),
        ("image:\n  pullPolicy: Sometimes\n", "- image.pullPolicy: "),
        ("libvirt:\n  socketDir: run/libvirt\n", "- libvirt.socketDir: Does not match pattern"),
        ("libvirt:\n  socketGroup: libvirt\n", "- libvirt.socketGroup: Invalid type"),
        ("central:\n  enabled: yes please\n", "- central.enabled: Invalid type"),
        ("leaderElection:\n  enabled: true\n",
         "- leaderElection: Additional property enabled is not allowed"),
        ("remoteAgents:\n  - libvirtUri: qemu+tls://h/system\n",
         "- remoteAgents.0: nodeName is required"),
        ("hooks:\n  timeout: 30\n", "- hooks.timeout: Invalid type"),
        ("tolerations: {}\n", "- tolerations: Invalid type"),
        ("unknownTopLevel: 1\n", "Additional property unknownTopLevel is not allowed"),
    ]

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(CHART, "values.schema.json")) as handle:
            cls.schema = json.load(handle)

    def test_is_draft_07(self):
        self.assertEqual(self.schema["$schema"], "http://json-schema.org/draft-07/schema#")

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

        self.assertEqual(paths_of_schema(self.schema),
                         paths_of_values(chart_lib.values_yaml(), self.schema))

    def test_templates_read_only_values_that_values_yaml_declares(self):
        # helm renders a misspelt .Values.x as "" (and its lint does not catch it), so the
        # paths the templates read are checked against values.yaml here.
        values = chart_lib.values_yaml()
        reference = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
        undeclared = set()
        for folder in ("templates", "files"):
            for name in sorted(os.listdir(os.path.join(CHART, folder))):
                with open(os.path.join(CHART, folder, name), encoding="utf-8") as handle:
                    text = handle.read()
                for match in reference.finditer(text):
                    node = values
                    for key in match.group(1).split(".")[1:]:
                        if not isinstance(node, dict):
                            break  # a leaf value (or a free-form map's entry) reached
                        if key not in node:
                            undeclared.add("%s/%s: .Values%s" % (folder, name, match.group(1)))
                            break
                        node = node[key]
        self.assertEqual(undeclared, set())

    def test_rejects_bad_values_naming_the_key(self):
        with tempfile.TemporaryDirectory(dir=Tools.home) as directory:
            for values_text, expected in self.BAD_VALUES:
                with self.subTest(values=values_text):
                    values_file = chart_lib.write_temp(directory, "bad.yaml", values_text)
                    message = chart_lib.template_error(values_file)
                    self.assertIn("values don't meet the specifications of the schema", message)
                    self.assertIn(expected, message)
                    linted = lint(values_file)
                    self.assertNotEqual(linted.returncode, 0, "helm lint accepted " + values_text)
                    self.assertIn(expected, linted.stdout)

    def test_set_flags_are_checked_too(self):
        result = chart_lib.helm(*chart_lib.template_args(extra=["--set", "workers=-1"]))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("- workers: Must be greater than or equal to 1", result.stderr)


class KustomizeTest(unittest.TestCase):
    """deploy/ builds with the real kubectl (offline: build and parse, no server)."""

    def kustomize(self, directory):
        result = chart_lib.run([Tools.kubectl, "kustomize", directory])
        self.assertEqual(result.returncode, 0, result.stderr)
        return yaml_objects(text=result.stdout)

    def test_base_builds(self):
        objects = self.kustomize(DEPLOY)
        self.assertEqual(kinds(objects), collections.Counter({
            "CustomResourceDefinition": 1, "Namespace": 2, "ServiceAccount": 2,
            "ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 3, "RoleBinding": 3,
            "DaemonSet": 1, "Deployment": 1, "Service": 1}))
        self.assertEqual(sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"),
                         ["hotplug-system", AGENT_LEASES])
        crd = one(objects, "CustomResourceDefinition")
        self.assertEqual(crd["metadata"]["name"], "elasticvms.hotplug.dev")

    def test_central_builds(self):
        objects = self.kustomize(os.path.join(DEPLOY, "central"))
        self.assertEqual(kinds(objects), collections.Counter({
            "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 2,
            "RoleBinding": 2, "Deployment": 1}))
        for obj in objects:
            if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
                expected = (AGENT_LEASES if obj["metadata"]["name"].endswith("-agent-leases-reader")
                            else "hotplug-system")
                self.assertEqual(obj["metadata"]["namespace"], expected)

    def kubectl_names(self, manifest):
        """kind/name of each object kubectl decodes from manifest (locally, no server); a
        YAML error or a document without apiVersion, kind or name fails it."""
        result = chart_lib.run([Tools.kubectl, "patch", "--local", "--type", "merge", "-p", "{}",
                                "-o", "name", "-f", manifest])
        self.assertEqual(result.returncode, 0, result.stderr)
        return [line for line in result.stdout.splitlines() if line]

    def test_chart_output_with_crds_is_read_by_kubectl(self):
        result = chart_lib.helm(*chart_lib.template_args([ALL_TOGGLES], extra=["--include-crds"]))
        self.assertEqual(result.returncode, 0, result.stderr)
        with tempfile.TemporaryDirectory(dir=Tools.home) as directory:
            names = self.kubectl_names(chart_lib.write_temp(directory, "chart.yaml", result.stdout))
        self.assertEqual(len(names), len(chart_lib.Rendering(result.stdout).objects))
        self.assertIn("daemonset.apps/hotplug-operator", names)
        self.assertIn("customresourcedefinition.apiextensions.k8s.io/elasticvms.hotplug.dev", names)

    def test_plain_manifests_and_examples_are_read_by_kubectl(self):
        for directory in (DEPLOY, os.path.join(DEPLOY, "central"), os.path.join(DEPLOY, "examples"),
                          os.path.join(DEPLOY, "monitoring")):
            for name in sorted(os.listdir(directory)):
                if name.endswith(".yaml") and name != "kustomization.yaml":
                    with self.subTest(manifest=name):
                        path = os.path.join(directory, name)
                        self.assertEqual(len(self.kubectl_names(path)),
                                         len(yaml_objects(path=path)))


class BinaryFlagsTest(unittest.TestCase):
    """Every flag the manifests and the chart pass is one the built binary knows: an
    unknown flag makes it exit 2, and the pods would crash-loop."""

    @classmethod
    def setUpClass(cls):
        if not Tools.operator:
            raise unittest.SkipTest("no --binary given (the built hotplug-operator)")
        result = chart_lib.run([Tools.operator, "--help"], timeout_s=30)
        cls.known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout + result.stderr))
        if not cls.known:
            raise AssertionError("`%s --help` listed no flags:\n%s%s"
                                 % (Tools.operator, result.stdout, result.stderr))

    def assert_known(self, args, where):
        unknown = sorted({arg_name(a) for a in args} - self.known)
        self.assertEqual(unknown, [], "%s passes flags the binary does not know" % where)

    def test_plain_manifests(self):
        for path in (os.path.join(DEPLOY, "daemonset.yaml"),
                     os.path.join(DEPLOY, "central", "deployment.yaml")):
            (workload,) = yaml_objects(path=path)
            self.assert_known(container(workload)["args"], os.path.relpath(path, REPO))

    def test_chart(self):
        for overrides in ((), (ALL_TOGGLES,)):
            for obj in template(*overrides).objects:
                if obj["kind"] in ("DaemonSet", "Deployment"):
                    self.assert_known(container(obj)["args"],
                                      "chart %s with %s" % (obj["kind"], overrides or "defaults"))


def main():
    rest = chart_lib.setup(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()

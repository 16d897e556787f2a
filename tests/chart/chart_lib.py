"""Shared pieces of the chart tests: the real helm (v3) and kubectl, each run with its own
state in a temporary folder, and YAML read through kubectl so that the tests need only
Python's standard library.

    tools = chart_lib.setup(argv)        # --helm, --kubectl, --binary; fails without helm
    rendering = chart_lib.template()     # `helm template` of the chart, objects as dicts
    chart_lib.yaml_objects(path=...)     # any Kubernetes manifest, as dicts
"""

import argparse
import atexit
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(REPO, "charts", "hotplug-operator")
DEPLOY = os.path.join(REPO, "deploy")
ALL_TOGGLES = os.path.join(REPO, "tests", "chart", "values-all-toggles.yaml")
CRD = os.path.join(REPO, "crd", "hotplug.dev_elasticvms.yaml")
RELEASE = "hotplug-operator"
NAMESPACE = "hotplug-system"
TOOL_TIMEOUT_S = 60

# The API calls each part makes (docs/architecture.md, "The RBAC of each part"), and so all
# its RBAC may grant. The agents (DaemonSet, remoteAgents):
EXPECTED_CLUSTER_RULES = {
    ("hotplug.dev", "elasticvms"): {"get", "list", "watch"},
    ("hotplug.dev", "elasticvms/status"): {"update"},
    ("", "events"): {"create", "patch"},
}
# ... and their Leases hotplug-agent-<node> in the agents' Lease namespace.
EXPECTED_AGENT_LEASE_RULES = {("coordination.k8s.io", "leases"): {"create", "get", "update"}}
# The central node assigner: the agents' verbs and patch (the hotplug.dev/node label) ...
EXPECTED_CENTRAL_CLUSTER_RULES = {
    ("hotplug.dev", "elasticvms"): {"get", "list", "watch", "patch"},
    ("hotplug.dev", "elasticvms/status"): {"update"},
    ("", "events"): {"create", "patch"},
}
# ... its own Lease in the release namespace (create; get and update by name) ...
EXPECTED_LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
# ... and a list of the agents' Leases in theirs.
EXPECTED_AGENT_LEASE_READER_RULES = {("coordination.k8s.io", "leases"): {"list"}}


class Tools:
    """Paths of the tools, from the command line; filled in by setup()."""
    helm = None
    kubectl = None
    operator = None  # the built hotplug-operator, optional
    home = None  # helm's and kubectl's state for this process
    empty_kubeconfig = None


def setup(doc):
    """Parses --helm/--kubectl/--binary, checks the tools and returns the other arguments
    (unittest's). A missing or wrong helm or kubectl is a failure that says what to do."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--helm", default=shutil.which("helm") or "/usr/local/bin/helm",
                        help="helm v3 (scripts/setup installs v3.17.1 at /usr/local/bin/helm)")
    parser.add_argument("--kubectl", default=shutil.which("kubectl") or "/usr/bin/kubectl")
    parser.add_argument("--binary", help="the built hotplug-operator")
    args, rest = parser.parse_known_args()
    Tools.helm, Tools.kubectl, Tools.operator = args.helm, args.kubectl, args.binary
    for name, path in (("helm", Tools.helm), ("kubectl", Tools.kubectl)):
        if not (path and os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"FAIL: no {name} at {path!r}. scripts/setup installs helm v3.17.1 at "
                  "/usr/local/bin/helm (kubectl comes with the machine image or Debian's "
                  "kubernetes-client); re-run cmake after installing.", flush=True)
            sys.exit(1)
    Tools.home = tempfile.mkdtemp(prefix="hotplug-chart-test-")
    atexit.register(shutil.rmtree, Tools.home, ignore_errors=True)
    Tools.empty_kubeconfig = os.path.join(Tools.home, "empty.kubeconfig")
    with open(Tools.empty_kubeconfig, "w", encoding="utf-8") as handle:
        handle.write("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    version = run([Tools.helm, "version", "--template", "{{ .Version }}"])
    if version.returncode != 0 or not version.stdout.startswith("v3."):
        print(f"FAIL: {Tools.helm} is not helm v3: {version.stdout}{version.stderr}", flush=True)
        sys.exit(1)
    print(f"helm {version.stdout.strip()} at {Tools.helm}, kubectl at {Tools.kubectl}",
          flush=True)
    return rest


def tool_env(kubeconfig=None):
    """helm's and kubectl's environment: every cache and config in this process's folder,
    never the user's ~/.kube or ~/.config/helm."""
    return dict(os.environ,
                HELM_CACHE_HOME=os.path.join(Tools.home, "helm-cache"),
                HELM_CONFIG_HOME=os.path.join(Tools.home, "helm-config"),
                HELM_DATA_HOME=os.path.join(Tools.home, "helm-data"),
                KUBECACHEDIR=os.path.join(Tools.home, "kube-cache"),
                KUBECONFIG=kubeconfig or Tools.empty_kubeconfig)


def run(command, input_text=None, env=None, timeout_s=TOOL_TIMEOUT_S):
    return subprocess.run(command, capture_output=True, text=True, input=input_text,
                          env=env or tool_env(), timeout=timeout_s)


def helm(*args, kubeconfig=None, input_text=None):
    """One helm command; the CompletedProcess, whatever its exit code."""
    command = [Tools.helm, *args]
    if kubeconfig:
        command += ["--kubeconfig", kubeconfig]
    return run(command, input_text=input_text, env=tool_env(kubeconfig))


def _decode_json_stream(text):
    """The JSON values of text, one after the other (kubectl prints one per object)."""
    decoder = json.JSONDecoder()
    values, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return values
        value, position = decoder.raw_decode(text, position)
        values.append(value)


def yaml_objects(path=None, text=None):
    """The Kubernetes objects of a YAML file or text, decoded by kubectl without a server
    (a merge patch of {} is a no-op). A document without apiVersion or kind is an error."""
    result = run([Tools.kubectl, "patch", "--local", "--type", "merge", "-p", "{}",
                  "-o", "json", "-f", path or "-"], input_text=text)
    if result.returncode != 0:
        raise AssertionError(f"kubectl cannot read {path or 'the YAML'}: {result.stderr}")
    return _decode_json_stream(result.stdout)


def write_temp(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def values_yaml():
    """The chart's values.yaml as helm reads it (a throw-away chart prints it as JSON)."""
    with tempfile.TemporaryDirectory(dir=Tools.home) as directory:
        os.makedirs(os.path.join(directory, "templates"))
        write_temp(directory, "Chart.yaml", "apiVersion: v2\nname: values-dump\nversion: 0.0.0\n")
        shutil.copy(os.path.join(CHART, "values.yaml"), os.path.join(directory, "values.yaml"))
        write_temp(directory, os.path.join("templates", "values.yaml"), "{{ toJson .Values }}\n")
        result = helm("template", "dump", directory)
    if result.returncode != 0:
        raise AssertionError("helm cannot read values.yaml: " + result.stderr)
    (values,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return values


# A document of `helm template` output; its "# Source:" line names the template.
_DOCUMENT_SEPARATOR = re.compile(r"(?m)^---[ \t]*$")
_SOURCE_LINE = re.compile(r"(?m)^# Source: (\S+)")


class Rendering:
    """`helm template` output: the text, the objects (dicts) and the template of each."""

    def __init__(self, text):
        self.text = text
        self.sources = []
        for document in _DOCUMENT_SEPARATOR.split(text):
            content = [line for line in document.splitlines()
                       if line.strip() and not line.lstrip().startswith("#")]
            if content:
                source = _SOURCE_LINE.search(document)
                self.sources.append(source.group(1) if source else None)
        self.objects = yaml_objects(text=text) if self.sources else []
        if len(self.objects) != len(self.sources):
            raise AssertionError("helm printed %d documents, kubectl read %d objects"
                                 % (len(self.sources), len(self.objects)))


def template_args(values_files=(), release=RELEASE, namespace=NAMESPACE, extra=()):
    args = ["template", release, CHART, "--namespace", namespace, *extra]
    for values_file in values_files:
        args += ["--values", values_file]
    return args


def template(*values_files, release=RELEASE, namespace=NAMESPACE, extra=()):
    """`helm template` of the chart with the values files; a failure raises with helm's
    message."""
    result = helm(*template_args(values_files, release, namespace, extra))
    if result.returncode != 0:
        raise AssertionError("helm template failed: " + result.stderr)
    return Rendering(result.stdout)


def template_error(*values_files, extra=()):
    """helm's message when `helm template` refuses the values (which it must)."""
    result = helm(*template_args(values_files, extra=extra))
    if result.returncode == 0:
        raise AssertionError("helm template accepted values it must refuse")
    return result.stderr


def template_with(values_text, expect_failure=False, extra=()):
    """`helm template` with one values file holding values_text."""
    with tempfile.TemporaryDirectory(dir=Tools.home) as directory:
        values_file = write_temp(directory, "values.yaml", values_text)
        if expect_failure:
            return template_error(values_file, extra=extra)
        return template(values_file, extra=extra)


def lint(*values_files):
    return helm("lint", "--strict", CHART, *[a for f in values_files for a in ("--values", f)])


# ---- reading objects

def kinds(objects):
    return collections.Counter(obj["kind"] for obj in objects)


def one(objects, kind, name_suffix=""):
    found = [o for o in objects
             if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    if len(found) != 1:
        raise AssertionError("expected one %s *%s, found %d" % (kind, name_suffix, len(found)))
    return found[0]


def named(objects, kind, suffix):
    """The one object of `kind` whose name ends with `suffix`."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    if len(found) != 1:
        raise AssertionError("expected one %s named *%s, found %d" % (kind, suffix, len(found)))
    return found[0]


def of_component(objects, kind, component):
    """The one object of `kind` labelled app.kubernetes.io/component=`component`."""
    found = [o for o in objects if o["kind"] == kind and
             o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]
    if len(found) != 1:
        raise AssertionError("expected one %s of component %s, found %d"
                             % (kind, component, len(found)))
    return found[0]


def rules_by_resource(rules):
    """{(apiGroup, resource): verbs}, rejecting wildcards and non-resource URLs."""
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

#!/usr/bin/env python3
"""Every malformed ElasticVM in tests/reliability/bad_inputs/ (plus a few generated at run
time: a megabyte string, deep nesting) sent three ways, and how each way must answer:

  (a) `kubectl apply` against the test API server with the CRD's schema: rejected with a
      message naming the field (or, for what only the host can know, accepted);
  (b) a file in a --standalone folder: a clear status (InvalidSpec or the host's reason) or
      a file error, and a good object in the same folder still converges;
  (c) created over raw HTTP on a test API server with validation off (the schema bypassed):
      the operator sets InvalidSpec (or BelowMinimum / ExceedsMaximum / DomainNotFound where
      that is the truth) with a precise message, and a good object still converges.

Nothing may crash: the operator is alive at the end of (b) and (c) and a change to the good
object made after all the bad ones converges. Prints the count and a table of answers.

Run: python3 tests/reliability/bad_input_test.py [path/to/hotplug-operator-testing] [-k WAY]
     --observe prints what each way answered without judging it (to extend the corpus).
"""

import glob
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from reliability_lib import (ROOT, CheckFailed, Cluster, expect, poll, run_checks,
                             stop_cleanly)
import operator_lib

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import standalone_test  # noqa: E402  (its folder helpers and YAML reader)

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "bad_inputs")
OBSERVE = "--observe" in sys.argv
GOOD_NAME = "good-vm"

def generated_inputs():
    """Inputs too big to keep in the tree."""
    depth = 5000
    deep = ('{"nested": ' * depth + '{"vcpus": 2}' + "}" * depth)
    return {
        "generated-megabyte-domain.yaml": json.dumps({
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": "bad-megabyte-domain"},
            "spec": {"domain": "d" * (1 << 20), "cpu": {"vcpus": 2}}}).encode(),
        "generated-deep-nesting.yaml": (
            '{"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM", '
            '"metadata": {"name": "bad-deep-nesting"}, "spec": {"cpu": ' + deep + "}}").encode(),
        "generated-megabyte-annotation.yaml": json.dumps({
            "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
            "metadata": {"name": "bad-megabyte-annotation",
                         "annotations": {"note": "n" * (1 << 20)}},
            "spec": {"cpu": {"vcpus": 2}}}).encode(),
    }


def corpus():
    """[(file name, bytes)] in a stable order."""
    items = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.yaml"))):
        with open(path, "rb") as handle:
            items.append((os.path.basename(path), handle.read()))
    items.extend(sorted(generated_inputs().items()))
    return items


def object_name(data):
    """metadata.name when the bytes are JSON with one, else None."""
    try:
        doc = json.loads(data.decode("utf-8", errors="replace"))
        return doc["metadata"]["name"] if isinstance(doc, dict) else None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return None


def domains_for(names):
    """A fake domain (8 vCPU slots, 1 enabled) for every object name and the good one."""
    return [{"name": name, "maximumVcpus": 8, "currentVcpus": 1}
            for name in sorted(set(names) | {GOOD_NAME})]


def ready_answer(obj):
    """'Reason: message' of the Ready condition, or None."""
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == "Ready":
            return f"{item.get('reason')}: {item.get('message')}"
    return None


def matches(expected, got, reasons):
    """kubectl (reasons=False): "ACCEPTED", "REJECTED" (any error) or a part of the error.
    The operator's ways (reasons=True): "Reason: part of the message", where Reason may also
    be FILE (a standalone file error) or REFUSED (the test API server refused the bytes)."""
    if expected == "NONE" or got is None:
        return expected == "NONE" and got is None
    if expected in ("ACCEPTED", "REJECTED"):
        return (got == "ACCEPTED") == (expected == "ACCEPTED")
    if not reasons:
        return got != "ACCEPTED" and expected in got
    head, _, part = expected.partition(": ")
    got_head, _, got_rest = got.partition(": ")
    return got_head == head and part in got_rest


ANSWERS = {}  # way -> {file: answer}


def judge(way, index):
    answers = ANSWERS[way]
    wrong = []
    for name, _ in corpus():
        expected = EXPECTATIONS.get(name, (None, None, None))[index]
        got = answers.get(name)
        if OBSERVE:
            print(f"  {way} {name}: {got}")
            continue
        if expected is None:
            wrong.append(f"{name}: no expectation; got {got!r}")
        elif not matches(expected, got, index > 0):
            wrong.append(f"{name}: want {expected!r}, got {got!r}")
    expect(not wrong, f"{len(wrong)} wrong answers:\n    " + "\n    ".join(wrong))


# --- (a) kubectl apply against the schema --------------------------------------------

def check_kubectl_apply():
    answers = ANSWERS.setdefault("kubectl", {})
    with Cluster("bad-kubectl") as cluster:
        for name, data in corpus():
            path = cluster.path(name)
            with open(path, "wb") as handle:
                handle.write(data)
            result = cluster.kubectl("apply", "-f", path, check=False)
            answers[name] = ("ACCEPTED" if result.returncode == 0
                             else " ".join(result.stderr.split())[:400])
        expect(cluster.api.process.poll() is None, "the API server died")
    judge("kubectl", 0)


# --- (b) files in a --standalone folder ----------------------------------------------

NOT_UTF8 = []  # status files holding bytes that are not UTF-8 (YAML must be UTF-8)


def read_status_file(folder, stem):
    """DIR/.status/<stem>.yaml parsed, or None. Bytes that are not UTF-8 are noted and
    replaced (the file's YAML would be refused by a strict reader)."""
    path = os.path.join(folder.path, ".status", stem + ".yaml")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        NOT_UTF8.append(os.path.basename(path))
        text = data.decode("utf-8", errors="replace")
    return standalone_test.parse_yaml(text) if text.strip() else None


def check_standalone_folder():
    answers = ANSWERS.setdefault("standalone", {})
    workdir = tempfile.mkdtemp(prefix="hotplug-bad-standalone-")
    folder = standalone_test.Folder(os.path.join(workdir, "vms"))
    os.makedirs(folder.path)
    items = corpus()
    names = [object_name(data) for _, data in items]
    domains = os.path.join(workdir, "domains.json")
    with open(domains, "w", encoding="utf-8") as handle:
        json.dump(domains_for([n for n in names if n]), handle)
    for name, data in items:
        with open(os.path.join(folder.path, name), "wb") as handle:
            handle.write(data)
    folder.write("good.yaml", standalone_test.vm_yaml(GOOD_NAME, 3))
    process = standalone_test.Operator(
        operator_lib.operator_binary(),
        ["--standalone", folder.path, "--hypervisor=fake", f"--fake-domains-file={domains}",
         "--health-probe-bind-address=0", "--metrics-bind-address=0"],
        os.path.join(workdir, "operator.log")).start()
    ok = False
    try:
        poll(lambda: standalone_test.converged(folder, GOOD_NAME, 3), "the good object", 30)
        for (name, _), obj_name in zip(items, names):
            def answer(name=name, obj_name=obj_name):
                errors = read_status_file(folder, f"_file_{name}")
                if errors:
                    return "FILE: " + "; ".join(errors.get("errors") or [json.dumps(errors)])
                if obj_name:
                    return ready_answer(read_status_file(folder, f"default_{obj_name}"))
                return None
            try:
                answers[name] = poll(answer, f"an answer about {name}", 5, 0.1)
            except CheckFailed:
                answers[name] = None
        folder.write("good.yaml", standalone_test.vm_yaml(GOOD_NAME, 6))
        poll(lambda: standalone_test.converged(folder, GOOD_NAME, 6),
             "the good object after the bad ones", 30)
        expect(process.process.poll() is None, "the operator died")
        ok = True
    finally:
        code = process.sigterm_and_wait(30)
        if ok and not OBSERVE:
            expect(code == 0, f"exit code {code} after SIGTERM")
        if ok and not os.environ.get("KEEP_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  work directory kept: {workdir}\n{process.tail()}")
    if NOT_UTF8:
        print(f"  KNOWN BUG: status files not UTF-8: {sorted(set(NOT_UTF8))}")
    judge("standalone", 1)


# --- (c) raw objects, the schema bypassed ----------------------------------------------

def post_raw(cluster, data):
    request = urllib.request.Request(
        f"{cluster.api.url}/apis/hotplug.dev/v1alpha1/namespaces/default/elasticvms",
        data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"message": body.decode(errors="replace")}


def get_raw(cluster, name):
    """The stored object (kubectl would refuse to ask for an invalid name)."""
    url = (f"{cluster.api.url}/apis/hotplug.dev/v1alpha1/namespaces/default/elasticvms/"
           f"{urllib.parse.quote(name, safe='!')}")  # the server does not unescape %21
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError:
        return None


def check_raw_objects():
    answers = ANSWERS.setdefault("raw", {})
    items = corpus()
    names = [object_name(data) for _, data in items]
    with Cluster("bad-raw", apiserver_args=["--no-validate"]) as cluster:
        domains = cluster.write_domains(domains_for([n for n in names if n]))
        operator = cluster.operator("operator", ["--namespace=default",
                                                 f"--fake-domains-file={domains}",
                                                 "--metrics-bind-address=0"])
        cluster.apply_vm(GOOD_NAME, 3)
        poll(lambda: cluster.converged(GOOD_NAME, 3), "the good object", 30)
        created = {}
        for name, data in items:
            # Sent as they are; what is not JSON at all the server refuses (400).
            code, body = post_raw(cluster, data)
            if code >= 300:
                answers[name] = f"REFUSED: {code} {body.get('message', '')[:300]}"
            else:
                created[name] = body["metadata"]["name"]
        for name, obj_name in created.items():
            def answer(obj_name=obj_name):
                return ready_answer(get_raw(cluster, obj_name))
            try:
                answers[name] = poll(answer, f"a status on {obj_name}", 15, 0.1)
            except CheckFailed:
                answers[name] = None
        cluster.patch_vcpus(GOOD_NAME, 6)
        poll(lambda: cluster.converged(GOOD_NAME, 6), "the good object after the bad ones", 30)
        expect(operator.process.poll() is None, "the operator died")
        stop_cleanly(operator)
    judge("raw", 2)


# What each way must answer, per input (see matches()): (kubectl, standalone, raw).
# The message part makes the answer precise: the field, the value or the limit.
EXPECTATIONS = {
    # The schema's job; the operator must say the same when the schema is bypassed.
    "vcpus-string.yaml": ('spec.cpu.vcpus in body must be of type integer: "string"',
                          "InvalidSpec: spec.cpu.vcpus", 'InvalidSpec: got "four"'),
    "vcpus-negative.yaml": ("spec.cpu.vcpus in body should be greater than or equal to 1",
                            "BelowMinimum: spec.cpu.vcpus is -3", "BelowMinimum: is -3"),
    "vcpus-zero.yaml": ("spec.cpu.vcpus in body should be greater than or equal to 1",
                        "BelowMinimum: spec.cpu.vcpus is 0", "BelowMinimum: is 0"),
    "vcpus-float.yaml": ('spec.cpu.vcpus in body must be of type integer: "number"',
                         "InvalidSpec: spec.cpu.vcpus", "InvalidSpec: got 2.5"),
    "vcpus-bool.yaml": ('spec.cpu.vcpus in body must be of type integer: "boolean"',
                        "InvalidSpec: spec.cpu.vcpus", "InvalidSpec: got true"),
    "vcpus-int64-max.yaml": ("should be less than or equal to 4096",
                             "InvalidSpec: spec.cpu.vcpus",
                             "InvalidSpec: from 1 to 4096, got 9223372036854775807"),
    "vcpus-above-schema-max.yaml": ("should be less than or equal to 4096",
                                    "InvalidSpec: from 1 to 4096, got 5000",
                                    "InvalidSpec: from 1 to 4096, got 5000"),
    "vcpus-null.yaml": ("ACCEPTED", "Synced: nothing to manage",
                        "Synced: nothing to manage"),
    "cpu-not-object.yaml": ("spec.cpu in body must be of type object",
                            "InvalidSpec: spec.cpu: expected an object",
                            "InvalidSpec: spec.cpu: expected an object"),
    "spec-list.yaml": ("spec in body must be of type object",
                       "InvalidSpec: spec: expected an object",
                       "InvalidSpec: spec: expected an object"),
    "spec-missing.yaml": ("spec: Required value", "InvalidSpec: spec: required",
                          "InvalidSpec: spec: required"),
    "memory-bad-quantity.yaml": ("spec.memory.size in body should match",
                                 "InvalidSpec: spec.memory.size", "InvalidSpec: \" GB\""),
    "memory-negative.yaml": ("spec.memory.size in body should match",
                             "InvalidSpec: spec.memory.size", "InvalidSpec: got \"-1Gi\""),
    "memory-huge.yaml": ("ACCEPTED", "InvalidSpec: spec.memory.size: quantity is too large",
                         "InvalidSpec: spec.memory.size: quantity is too large"),
    "memory-method-unknown.yaml": ('Unsupported value: "teleport"',
                                   "InvalidSpec: spec.memory.method",
                                   'InvalidSpec: got "teleport"'),
    "guestonline-unknown.yaml": ('Unsupported value: "sometimes"',
                                 "InvalidSpec: spec.cpu.guestOnline",
                                 'InvalidSpec: got "sometimes"'),
    "persist-string.yaml": ("spec.persist in body must be of type boolean",
                            "InvalidSpec: spec.persist", 'InvalidSpec: got "yes please"'),
    "domain-empty.yaml": ("spec.domain in body should be at least 1 chars long",
                          # "" is taken as unset: the domain named like the object.
                          "Synced: ", "Synced: "),
    "domain-not-string.yaml": ("spec.domain in body must be of type string",
                               "InvalidSpec: spec.domain: expected a string",
                               "InvalidSpec: spec.domain: expected a string"),
    "generated-megabyte-domain.yaml": ("may not be longer than 256",
                                       "InvalidSpec: spec.domain: longer than 256",
                                       "InvalidSpec: spec.domain: longer than 256"),
    "unknown-field.yaml": ('unknown field "spec.cpu.vcpuz"', "Synced: ", "Synced: "),
    # What only the host knows: accepted by the schema, refused by the operator.
    "vcpus-above-domain-max.yaml": ("ACCEPTED", "ExceedsMaximum: has a maximum of 8 vCPUs",
                                    "ExceedsMaximum: has a maximum of 8 vCPUs"),
    "domain-unknown.yaml": ("ACCEPTED", "DomainNotFound: no libvirt domain named no-such-domain",
                            "DomainNotFound: no libvirt domain named no-such-domain"),
    # Names and types. A real API server sets apiVersion/kind from the path it serves, so a
    # raw object stored under elasticvms is an ElasticVM whatever it says.
    "name-missing.yaml": ("resource name may not be empty", "FILE: metadata.name: required",
                          "REFUSED: 422 "),
    # Without validation the server stores any name; the operator reconciles it.
    "name-invalid.yaml": ("a lowercase RFC 1123 subdomain",
                          'FILE: metadata.name "Bad_Name!" is not a valid name', "Synced: "),
    "wrong-apiversion.yaml": ('no matches for kind "ElasticVM" in version "hotplug.dev/v9"',
                              'FILE: apiVersion: expected "hotplug.dev/v1alpha1"', "Synced: "),
    # kubectl names no kind here: the test API server serves no OpenAPI v2 to fall back on.
    "wrong-kind.yaml": ("error validating", 'FILE: kind: expected "ElasticVM"', "Synced: "),
    "generated-megabyte-annotation.yaml": ("ACCEPTED", "Synced: ", "Synced: "),
    # Bytes that are not a plain JSON object.
    # kubectl keeps the last of two keys; the operator refuses to guess.
    "duplicate-keys.yaml": ("ACCEPTED", 'FILE: duplicate key "vcpus"', "REFUSED: 400 "),
    "anchor-bomb.yaml": ("document contains excessive aliasing",
                         "FILE: more than 100000 nodes (after expanding aliases)",
                         "REFUSED: 400 "),
    # kubectl replaces the bad bytes; so does the operator, and no such domain exists.
    "non-utf8.yaml": ("ACCEPTED", "InvalidSpec: spec.domain: expected UTF-8 text",
                      "REFUSED: 400 "),
    "not-yaml.yaml": ("error converting YAML to JSON", "FILE: not valid YAML", "REFUSED: 400 "),
    # An empty file holds no object: nothing to report, nothing to do.
    "empty.yaml": ("no objects passed to apply", "NONE", "REFUSED: 400 "),
    "generated-deep-nesting.yaml": ("REJECTED", "FILE: nested deeper than 64 levels",
                                    "REFUSED: "),
    # A hostile host (issue 13). libvirt would see a name cut at the NUL; a terminal would
    # run the escape sequence: control characters in a name are InvalidSpec.
    "domain-nul.yaml": ("ACCEPTED",
                        "InvalidSpec: spec.domain: expected a name without control characters",
                        "InvalidSpec: spec.domain: expected a name without control characters"),
    "domain-control.yaml": ("ACCEPTED",
                            "InvalidSpec: spec.domain: expected a name without control characters",
                            "InvalidSpec: spec.domain: expected a name without control "
                            "characters"),
    # YAML the decoder does not implement is an error naming the line, never dropped.
    "merge-key.yaml": ('unknown field "spec.memory.vcpus"',
                       "FILE: document 1: merge keys (<<) are not supported; write the fields out "
                       "at line 9", "REFUSED: 400 "),
    "custom-tag.yaml": ("spec.cpu.vcpus in body must be of type integer",
                        "FILE: document 1: the tag !cpus on a scalar is not supported",
                        "REFUSED: 400 "),
    # The operator's own annotations mean what the operator meant: a file's are ignored.
    "reserved-annotation.yaml": ("ACCEPTED",
                                 'FILE: document 1: metadata.annotations["hotplug.dev/removed"] '
                                 "is the operator's own annotation", "REFUSED: 400 "),
}


def summary():
    total = len(corpus())
    print(f"bad inputs: {total} tried")
    for way, answers in ANSWERS.items():
        kinds = {}
        for got in answers.values():
            if got is None:
                kind = "no answer"
            elif way == "kubectl":
                kind = "accepted" if got == "ACCEPTED" else "rejected"
            else:
                kind = got.split(":")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"  {way}: " + ", ".join(f"{count} {kind}" for kind, count in
                                       sorted(kinds.items(), key=lambda item: -item[1])))


def check_status_files_are_utf8():
    """Regression: a spec string that is not UTF-8 (bad_inputs/non-utf8.yaml) was copied as is
    into the condition message, so the standalone status file was not UTF-8 and YAML readers
    refused it. The decoder now refuses such text (InvalidSpec) and shows it with the bad
    bytes replaced."""
    workdir = tempfile.mkdtemp(prefix="hotplug-bad-utf8-")
    folder = standalone_test.Folder(os.path.join(workdir, "vms"))
    os.makedirs(folder.path)
    shutil.copy(os.path.join(CORPUS, "non-utf8.yaml"), folder.path)
    process = standalone_test.Operator(
        operator_lib.operator_binary(),
        ["--standalone", folder.path, "--hypervisor=fake", "--fake-domains=0",
         "--health-probe-bind-address=0", "--metrics-bind-address=0"],
        os.path.join(workdir, "operator.log")).start()
    try:
        path = os.path.join(folder.path, ".status", "default_bad-non-utf8.yaml")
        poll(lambda: os.path.exists(path), "the status file", 20)
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CheckFailed(f"{os.path.basename(path)} is not UTF-8: {error}") from None
    finally:
        process.sigterm_and_wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if "--known-bugs" in sys.argv:
        sys.exit(run_checks([("status_files_are_utf8", check_status_files_are_utf8)],
                            sys.argv))
    code = run_checks([
        ("kubectl_apply", check_kubectl_apply),
        ("standalone_folder", check_standalone_folder),
        ("raw_objects", check_raw_objects),
    ], [a for a in sys.argv if a != "--observe"])
    summary()
    sys.exit(code)

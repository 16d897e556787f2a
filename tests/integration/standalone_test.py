#!/usr/bin/env python3
"""hotplug-operator --standalone DIR --hypervisor=fake, driven through its folder the way a
user drives it: YAML files are written (in place and editor-style, temp file + rename),
the status files in DIR/.status converge (desired = current, Ready=True, observedGeneration
= generation), a bad file and a bad spec are reported (InvalidSpec) while the other objects
keep converging, a duplicate is rejected, a removed file leaves its VMs untouched (the fake
hypervisor's call log shows no change), SIGTERM exits 0, and a restart keeps uid, generation
and lastTransitionTime.

Standard library only. Every wait is a poll with a deadline; processes are stopped by PID.
Run: python3 tests/integration/standalone_test.py [path/to/hotplug-operator-testing]
     (or set HOTPLUG_OPERATOR; KEEP_WORKDIR=1 keeps the temp folder)
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


from check_lib import CheckFailed, expect, operator_binary, poll  # noqa: E402,F401


# --- The YAML the operator writes (yaml-cpp's block style), read without PyYAML. ---------

def _scalar(text):
    text = text.strip()
    if text in ("", "~", "null"):
        return None
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _quoted_end(text):
    """Index of the quote closing the double-quoted string that `text` starts with."""
    i = 1
    while text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i


def _is_mapping(content):
    if content.startswith('"'):
        return content[_quoted_end(content) + 1:].lstrip().startswith(":")
    return ": " in content or content.endswith(":")


def _split_key(content):
    if content.startswith('"'):
        end = _quoted_end(content)
        return json.loads(content[:end + 1]), content[end + 1:].lstrip()[1:]
    key, _, rest = content.partition(":")
    return key.strip(), rest


def _block(lines, i, indent):
    """Parses the block starting at lines[i] (indented `indent`); returns (value, next i)."""
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
            rest = lines[i][1][1:].lstrip()
            inner = indent + 1 + (len(lines[i][1]) - 1 - len(rest))
            if not rest:
                value, i = _block(lines, i + 1, lines[i + 1][0])
            elif _is_mapping(rest):
                lines[i] = (inner, rest)
                value, i = _block(lines, i, inner)
            else:
                value, i = _scalar(rest), i + 1
            items.append(value)
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, rest = _split_key(lines[i][1])
        i += 1
        if rest.strip():
            mapping[key] = _scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or
                                 (lines[i][0] == indent and lines[i][1].startswith("- "))):
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def parse_yaml(text):
    lines = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped == "---":
            continue
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))
    if not lines:
        return None
    value, _ = _block(lines, 0, lines[0][0])
    return value


# --- The folder, the fake hypervisor's call log, the process. ----------------------------

def vm_yaml(name, vcpus, domain=None):
    return (f"apiVersion: hotplug.dev/v1alpha1\nkind: ElasticVM\nmetadata:\n  name: {name}\n"
            f"spec:\n  domain: {domain or name}\n  cpu:\n    vcpus: {vcpus}\n")


class Folder:
    def __init__(self, path):
        self.path = path

    def write(self, name, text):
        """In place: truncate and write (IN_CLOSE_WRITE)."""
        with open(os.path.join(self.path, name), "w", encoding="utf-8") as handle:
            handle.write(text)

    def replace(self, name, text):
        """As editors save: a temp file next to it, then rename over it (IN_MOVED_TO)."""
        temp = os.path.join(self.path, f".{name}.swp")
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.rename(temp, os.path.join(self.path, name))

    def remove(self, name):
        os.remove(os.path.join(self.path, name))

    def status_text(self, name, namespace="default"):
        try:
            with open(os.path.join(self.path, ".status", f"{namespace}_{name}.yaml"),
                      encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def status(self, name, namespace="default"):
        text = self.status_text(name, namespace)
        return parse_yaml(text) if text else None

    def file_errors(self, file_name):
        path = os.path.join(self.path, ".status", f"_file_{file_name}.yaml")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return parse_yaml(handle.read())


def condition(obj, kind):
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def converged(folder, name, vcpus):
    """The object's status file once it says desired = current = vcpus and Ready=True for
    the object's current generation; None before."""
    obj = folder.status(name)
    if not obj:
        return None
    status = obj.get("status") or {}
    numbers = status.get("vcpus") or {}
    ready = condition(obj, "Ready")
    if (numbers.get("desired") == vcpus and numbers.get("current") == vcpus and ready and
            ready.get("status") == "True" and
            status.get("observedGeneration") == obj["metadata"]["generation"]):
        return obj
    return None


def read_calls(path):
    """The call log's VM changes (vCPU and memory steps), without the owner claims and pins
    it also records."""
    calls = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip() and json.loads(line).get("op") in ("vcpu", "memory"):
                    calls.append(json.loads(line))
    except FileNotFoundError:
        pass
    return calls


class Operator:
    def __init__(self, binary, args, log_path):
        self.args = [binary] + args
        self.log_path = log_path
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=log)
        return self

    def lines(self):
        out = []
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    pass
        return out

    def logged(self, message_part):
        return [line for line in self.lines() if message_part in line.get("msg", "")]

    def probe(self, path):
        found = self.logged("health server listening")
        if not found:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{found[-1]['port']}{path}",
                                        timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def sigterm_and_wait(self, timeout_s=30):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def tail(self, count=40):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-count:])


# --- The test. ------------------------------------------------------------------------------

def run(workdir):
    binary = operator_binary()
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    expect("--standalone" in help_text, "--help does not list --standalone")
    folder = Folder(os.path.join(workdir, "vms"))
    os.mkdir(folder.path)
    domains = os.path.join(workdir, "domains.yaml")
    with open(domains, "w", encoding="utf-8") as handle:
        json.dump([{"name": n, "maximumVcpus": 8, "currentVcpus": 1}
                   for n in ("vm-a", "vm-b", "vm-c", "vm-s")], handle)
    calls_path = os.path.join(workdir, "calls.log")
    args = ["--standalone", folder.path, "--hypervisor=fake", f"--fake-domains-file={domains}",
            f"--fake-call-log={calls_path}", "--health-probe-bind-address=127.0.0.1:0"]
    if "--metrics-bind-address" in help_text:
        args.append("--metrics-bind-address=0")
    log_path = os.path.join(workdir, "operator.log")
    operators = []

    def start():
        operator = Operator(binary, args, log_path).start()
        operators.append(operator)
        return operator

    try:
        folder.write("a.yaml", vm_yaml("web-a", 3, "vm-a"))
        folder.write("b.yaml", vm_yaml("web-b", 2, "vm-b") + "---\n" + vm_yaml("web-c", 4, "vm-c"))
        folder.write("s.yaml", vm_yaml("web-s", 2, "vm-s"))
        operator = start()
        poll(lambda: operator.probe("/readyz") == 200, "/readyz once the folder was read")
        for name, vcpus in (("web-a", 3), ("web-b", 2), ("web-c", 4), ("web-s", 2)):
            obj = poll(lambda: converged(folder, name, vcpus), f"{name} to converge on {vcpus}")
            expect(obj["metadata"]["generation"] == 1, f"{name}: {obj['metadata']}")
        print("  4 objects from 3 files converged")

        # An editor-style save is seen and converges; the generation follows the spec.
        start_edit = time.monotonic()
        folder.replace("a.yaml", vm_yaml("web-a", 5, "vm-a"))
        obj = poll(lambda: converged(folder, "web-a", 5), "web-a to converge on 5",
                   interval_s=0.01)
        print(f"  editor save -> status converged: "
              f"{(time.monotonic() - start_edit) * 1000:.0f} ms")
        expect(obj["metadata"]["generation"] == 2, f"generation after one edit: {obj['metadata']}")

        # Bad input is reported; the other objects keep converging.
        folder.write("bad.yaml", "metadata: {name: [unclosed\n")
        folder.write("invalid.yaml", vm_yaml("web-bad", 1, "vm-x").replace("vcpus: 1",
                                                                         "vcpus: four"))
        folder.write("dup.yaml", vm_yaml("web-a", 1, "vm-a"))
        folder.write("b.yaml", vm_yaml("web-b", 3, "vm-b") + "---\n" + vm_yaml("web-c", 4, "vm-c"))
        poll(lambda: converged(folder, "web-b", 3), "web-b to converge on 3 beside bad files")
        errors = poll(lambda: folder.file_errors("bad.yaml"), "an error file for bad.yaml")
        expect("not valid YAML" in " ".join(errors["errors"]), f"bad.yaml: {errors}")

        def invalid_spec():
            obj = folder.status("web-bad")
            ready = obj and condition(obj, "Ready")
            return ready and ready["reason"] == "InvalidSpec" and ready["status"] == "False" and obj
        obj = poll(invalid_spec, "web-bad to report InvalidSpec")
        expect("spec.cpu.vcpus" in condition(obj, "Ready")["message"], f"web-bad: {obj}")
        errors = poll(lambda: folder.file_errors("dup.yaml"), "an error file for dup.yaml")
        expect("already defined in a.yaml" in " ".join(errors["errors"]), f"dup.yaml: {errors}")
        expect(converged(folder, "web-a", 5), "the duplicate changed web-a")
        expect(operator.logged("bad input ignored"), "no log line for the bad input")
        print("  bad YAML, InvalidSpec and a duplicate reported; web-b still converged")

        # A removed file stops its objects and changes nothing on their VMs.
        untouched = {"vm-b", "vm-c"}
        before = [c for c in read_calls(calls_path) if c.get("domain") in untouched]
        folder.remove("b.yaml")
        for name in ("web-b", "web-c"):
            poll(lambda: "hotplug.dev/removed" in (folder.status_text(name) or ""),
                 f"{name}'s status file to be marked removed")
        folder.replace("a.yaml", vm_yaml("web-a", 6, "vm-a"))  # a later change, as a sync point
        poll(lambda: converged(folder, "web-a", 6), "web-a to converge on 6")
        after = [c for c in read_calls(calls_path) if c.get("domain") in untouched]
        expect(after == before, f"calls on removed objects' VMs: {after[len(before):]}")
        expect(len(operator.logged("object removed")) >= 2, "no 'object removed' log lines")
        print("  removed file: reconciliation stopped, VMs untouched, status marked")

        events_log = os.path.join(folder.path, ".status", "events.log")
        with open(events_log, encoding="utf-8") as handle:
            reasons = {json.loads(line)["reason"] for line in handle if line.strip()}
        expect("VcpuPlugged" in reasons and "InvalidSpec" in reasons, f"events: {reasons}")

        # SIGTERM: a clean exit.
        before_restart = folder.status("web-s")
        code = operator.sigterm_and_wait()
        expect(code == 0, f"exit code after SIGTERM: {code}")
        expect(operator.logged("stopped"), "no 'stopped' log line")
        print("  SIGTERM: exit 0")

        # A restart loses nothing: uid, generation, lastTransitionTime.
        ltt = condition(before_restart, "Ready")["lastTransitionTime"]
        poll(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > ltt,
             "the wall clock to move past the recorded lastTransitionTime", 5)
        calls_before = len(read_calls(calls_path))
        operator = start()
        poll(lambda: operator.probe("/readyz") == 200, "/readyz after the restart")
        folder.replace("a.yaml", vm_yaml("web-a", 7, "vm-a"))
        obj = poll(lambda: converged(folder, "web-a", 7), "web-a to converge on 7 after restart")
        expect(obj["metadata"]["generation"] == 4, f"web-a generation: {obj['metadata']}")
        expect(len(read_calls(calls_path)) == calls_before + 1,
               "the restarted operator repeated or missed a step")
        after_restart = folder.status("web-s")
        expect(after_restart["metadata"]["uid"] == before_restart["metadata"]["uid"], "uid changed")
        expect(after_restart["metadata"]["generation"] == 1, "web-s generation changed")
        expect(condition(after_restart, "Ready")["lastTransitionTime"] == ltt,
               f"lastTransitionTime changed: {ltt} -> {condition(after_restart, 'Ready')}")
        expect("hotplug.dev/removed" in (folder.status_text("web-b") or ""),
               "web-b's removed mark was lost")
        code = operator.sigterm_and_wait()
        expect(code == 0, f"exit code after the second SIGTERM: {code}")
        print("  restart: uid, generation and lastTransitionTime kept; no step repeated")
    except BaseException:
        for operator in operators:
            print(f"  --- operator log (last lines) ---\n{operator.tail()}")
        raise
    finally:
        for operator in operators:
            operator.kill()


def main():
    workdir = tempfile.mkdtemp(prefix="hotplug-standalone-")
    ok = False
    try:
        run(workdir)
        ok = True
        print("PASS standalone_test")
    except CheckFailed as error:
        print(f"FAIL standalone_test: {error}")
    finally:
        if ok and not os.environ.get("KEEP_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  work directory kept: {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The shipped binary carries no test rig (issue 12): hotplug-operator's --help names no fake
hypervisor, it refuses --hypervisor=fake and the --fake-* flags, and it links no
backends::fake code; hotplug-operator-testing, which the tests run, still offers them.

Run: python3 tests/docker/shipped_binary_test.py path/to/hotplug-operator \
         path/to/hotplug-operator-testing
"""
import shutil
import subprocess
import sys

FAILURES = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else ": " + detail))
    if not ok:
        FAILURES.append(what)


# A binary that took the flag under test would go on to start: it binds nothing and finds no
# Kubernetes, so it exits at once.
QUIET = ["--health-probe-bind-address=0", "--metrics-bind-address=0",
         "--kubeconfig=/nonexistent/kubeconfig"]


def run(binary, *args):
    result = subprocess.run([binary, *args, *QUIET], capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout, result.stderr


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    shipped, testing = sys.argv[1], sys.argv[2]

    code, help_text, _ = run(shipped, "--help")
    check("hotplug-operator --help exits 0 and documents --hypervisor",
          code == 0 and "--hypervisor" in help_text, f"exit {code}")
    fake_lines = [line for line in help_text.splitlines() if "fake" in line.lower()]
    check("hotplug-operator --help names no fake", not fake_lines, "\n".join(fake_lines))

    code, _, err = run(shipped, "--hypervisor=fake")
    check("hotplug-operator --hypervisor=fake exits 2 naming the kinds it has",
          code == 2 and 'must be libvirt, not "fake"' in err, f"exit {code}: {err.strip()}")
    for flag in ("--fake-domains=1", "--fake-domains-file=x", "--fake-call-log=x",
                 "--fake-vcpu-latency=1s"):
        code, _, err = run(shipped, flag)
        name = flag.split("=")[0]
        check(f"hotplug-operator {flag} is an unknown flag",
              code == 2 and f"unknown flag {name}" in err, f"exit {code}: {err.strip()}")

    nm = shutil.which("nm")
    check("nm is installed (binutils)", nm is not None)
    if nm:
        symbols = subprocess.run([nm, "-C", shipped], capture_output=True, text=True,
                                 timeout=120).stdout
        fake = sorted({line.split(" ", 2)[-1] for line in symbols.splitlines()
                       if "backends::fake::" in line or "CallLoggingHypervisor" in line})
        check("hotplug-operator links no fake backend code", not fake, "\n".join(fake[:10]))

    # The rig still exists where the tests need it, so the checks above are not vacuous.
    code, help_text, _ = run(testing, "--help")
    check("hotplug-operator-testing --help offers --hypervisor=fake and the --fake-* flags",
          code == 0 and "libvirt or fake" in help_text and
          all(f in help_text for f in ("--fake-domains ", "--fake-domains-file",
                                       "--fake-call-log", "--fake-vcpu-latency")),
          f"exit {code}")
    code, _, err = run(testing, "--fake-domains=1")
    check("hotplug-operator-testing: --fake-* flags still need --hypervisor=fake",
          code == 2 and "--fake-* flags need --hypervisor=fake" in err, err.strip())

    print(f"{len(FAILURES)} failed" if FAILURES else "all passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

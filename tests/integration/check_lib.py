"""What the Python integration tests share: a failed check, a poll with a deadline, an HTTP
GET that never raises, a free port on 127.0.0.1, stopping a process by its PID, and finding
the hotplug-operator binary under test. Standard library only, no side effects on import.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CheckFailed(AssertionError):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def poll(predicate, what, timeout_s=20.0, interval_s=0.05):
    """Returns predicate()'s first truthy value; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def http_get(url, timeout_s=5.0):
    """(status, body) or (0, error text) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def free_port():
    """A port the kernel just gave out on 127.0.0.1 (for servers that cannot report the one
    they picked themselves)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process, timeout_s=10.0):
    """SIGTERM by PID, then SIGKILL when it has not ended by the deadline."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


def operator_binary():
    """The binary under test: $HOTPLUG_OPERATOR, argv[1], or build/test/hotplug-operator-testing
    (the build with the fake backend, which these tests drive)."""
    for candidate in (os.environ.get("HOTPLUG_OPERATOR"),
                      sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                      else None,
                      os.path.join(ROOT, "build", "test", "hotplug-operator-testing")):
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise CheckFailed("hotplug-operator-testing binary not found: set HOTPLUG_OPERATOR or pass "
                      "its path")

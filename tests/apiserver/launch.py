"""Starts and stops the test API server from a Python test: port 0, a deadline, kill by PID.

    with ApiServerProcess(extra_args=["--crd", CRD]) as api:
        api.url, api.port, api.admin("POST", "/_admin/faults", {...})
"""

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_apiserver.py")


class ApiServerProcess:
    def __init__(self, extra_args=(), start_timeout_s=15.0, scheme="http", log_path=None):
        self.extra_args = list(extra_args)
        self.start_timeout_s = start_timeout_s
        self.scheme = scheme
        self.log_path = log_path
        self.process = None
        self.port = None

    def start(self):
        stderr = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen([sys.executable, SERVER, "--port", "0"]
                                        + self.extra_args, stdout=subprocess.PIPE,
                                        stderr=stderr, text=True)
        deadline = time.monotonic() + self.start_timeout_s
        # readline blocks, but the server prints LISTENING (or exits) well within the deadline;
        # the deadline guards against a server that never starts.
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("LISTENING "):
                self.port = int(line.split()[1])
                return self
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError("the test API server did not start")

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def admin(self, method, path, body=None):
        """Calls the admin API (/_admin/...); returns the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        # The admin API is test plumbing: over HTTPS it does not verify the test certificate.
        context = ssl._create_unverified_context() if self.scheme == "https" else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())

    def stop(self, timeout_s=10.0):
        """SIGTERM by PID, then SIGKILL if it has not ended by the deadline."""
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

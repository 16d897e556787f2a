#!/usr/bin/env python3
"""The health and metrics endpoints under slow and idle clients (issue 13): hotplug-operator
--standalone (fake hypervisor, some objects so /metrics has content) is probed on /healthz
and /readyz every 100 ms and scraped on /metrics every 500 ms while, on EACH of the two
ports, 200 connections stay open without sending a byte and 10 clients send their request a
byte every 1.5 s (each reconnects when the server drops it). Prints one RESULT line per
endpoint (p50, p99, max in ms, failures) and, with --check, fails unless /healthz and
/readyz p99 < 100 ms and the scrape p99 < 500 ms.

    endpoint_bench.py BINARY [--seconds 20] [--idle 200] [--slow 10] [--check] [--smoke]

Every socket goes to 127.0.0.1; every loop ends by its deadline; the operator is stopped by
its PID.
"""

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PROBE_TIMEOUT_S = 2.0


def log_port(log_path, message, deadline):
    while time.monotonic() < deadline:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if message in entry.get("msg", "") and entry.get("port"):
                    return int(entry["port"])
        time.sleep(0.05)
    raise SystemExit(f"no '{message}' line with a port in {log_path}")


def request(port, path):
    """Seconds for one GET (connect to last byte), or None when it failed or took too long."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S) as conn:
            conn.settimeout(max(0.01, PROBE_TIMEOUT_S - (time.monotonic() - start)))
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                         .encode())
            data = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    if not data.startswith(b"HTTP/1.1 200") and not data.startswith(b"HTTP/1.0 200"):
        return None
    return time.monotonic() - start


class Attack:
    """`idle` silent connections and `slow` trickling clients on each port, until stop()."""

    def __init__(self, ports, idle, slow, deadline):
        self.ports, self.idle, self.slow, self.deadline = ports, idle, slow, deadline
        self.stopping = threading.Event()
        self.threads = []
        self.reconnects = 0

    def start(self):
        self.threads.append(threading.Thread(target=self.hold_idle, daemon=True))
        for port in self.ports:
            for _ in range(self.slow):
                self.threads.append(threading.Thread(target=self.trickle, args=(port,),
                                                     daemon=True))
        for thread in self.threads:
            thread.start()
        return self

    def running(self):
        return not self.stopping.is_set() and time.monotonic() < self.deadline

    def hold_idle(self):
        selector = selectors.DefaultSelector()

        def open_one(port):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=2)
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ, port)
            except OSError:
                pass
        for port in self.ports:
            for _ in range(self.idle):
                open_one(port)
        while self.running():
            for key, _ in selector.select(timeout=0.2):
                conn, port = key.fileobj, key.data
                try:
                    closed = not conn.recv(4096)
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:  # dropped by the server: come back, as an attacker would
                    selector.unregister(conn)
                    conn.close()
                    self.reconnects += 1
                    open_one(port)
        for key in list(selector.get_map().values()):
            key.fileobj.close()

    def trickle(self, port):
        text = b"GET /healthz HTTP/1.1\r\nHost: slow\r\n\r\n"
        while self.running():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                    for byte in text:
                        if not self.running():
                            return
                        conn.sendall(bytes([byte]))
                        if self.stopping.wait(1.5):
                            return
            except OSError:
                self.reconnects += 1
                if self.stopping.wait(0.1):
                    return

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)


def measure(port, path, interval_s, until, samples):
    while time.monotonic() < until:
        began = time.monotonic()
        samples.append(request(port, path))
        time.sleep(max(0.0, interval_s - (time.monotonic() - began)))


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def attack_main(args):
    """The attackers, in a process of their own so that they do not share the measuring
    process's interpreter lock (which would add their work to every measured request)."""
    ports = [int(p) for p in args.attack_ports.split(",")]
    attack = Attack(ports, args.idle, args.slow, time.monotonic() + args.seconds).start()
    signal.signal(signal.SIGTERM, lambda *_: attack.stopping.set())
    while attack.running():
        attack.stopping.wait(0.2)
    attack.stop()
    print(attack.reconnects, flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?")
    parser.add_argument("--attack-ports", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--slow", type=int, default=10)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="3 s, 20 idle, 2 slow, no check")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.idle, args.slow, args.check = 3, 20, 2, False
    if args.attack_ports:
        return attack_main(args)
    if not args.binary:
        parser.error("the hotplug-operator binary to measure is required")

    workdir = tempfile.mkdtemp(prefix="hotplug-endpoint-bench-")
    folder = os.path.join(workdir, "vms")
    os.makedirs(folder)
    for i in range(args.objects):
        with open(os.path.join(folder, f"vm-{i}.yaml"), "w", encoding="utf-8") as handle:
            handle.write(f"apiVersion: hotplug.dev/v1alpha1\nkind: ElasticVM\nmetadata:\n"
                         f"  name: vm-{i}\nspec:\n  cpu:\n    vcpus: 2\n")
    log_path = os.path.join(workdir, "operator.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [args.binary, "--standalone", folder, "--hypervisor=fake",
             f"--fake-domains={args.objects}", "--health-probe-bind-address=127.0.0.1:0",
             "--metrics-bind-address=127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    code = 1
    try:
        deadline = time.monotonic() + 30
        health = log_port(log_path, "health server listening", deadline)
        metrics = log_port(log_path, "metrics server listening", deadline)
        while request(health, "/readyz") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        attacker = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--attack-ports", f"{health},{metrics}",
             "--idle", str(args.idle), "--slow", str(args.slow),
             "--seconds", str(args.seconds + 10)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        time.sleep(min(2.0, args.seconds / 4))  # let the crowd gather before measuring
        until = time.monotonic() + args.seconds
        results = {"healthz": [], "readyz": [], "metrics": []}
        probers = [threading.Thread(target=measure, args=(health, "/healthz", 0.1, until,
                                                          results["healthz"])),
                   threading.Thread(target=measure, args=(health, "/readyz", 0.1, until,
                                                          results["readyz"])),
                   threading.Thread(target=measure, args=(metrics, "/metrics", 0.5, until,
                                                          results["metrics"]))]
        for thread in probers:
            thread.start()
        for thread in probers:
            thread.join()
        attacker.send_signal(signal.SIGTERM)
        try:
            reconnects = int((attacker.communicate(timeout=30)[0] or "0").split()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            attacker.kill()
            attacker.wait(timeout=10)
            reconnects = -1
        alive = process.poll() is None
        limits = {"healthz": 100, "readyz": 100, "metrics": 500}
        failed = []
        print(f"attack: {args.idle} idle + {args.slow} slow clients on each of 2 ports, "
              f"{reconnects} reconnects after the server dropped them; "
              f"{args.seconds:.0f} s measured")
        for name, samples in results.items():
            times = [s * 1000 if s is not None else PROBE_TIMEOUT_S * 1000 for s in samples]
            failures = sum(1 for s in samples if s is None)
            p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
            print(f"RESULT endpoint={name} requests={len(samples)} failures={failures} "
                  f"p50_ms={p50:.1f} p99_ms={p99:.1f} max_ms={max(times):.1f} "
                  f"limit_p99_ms={limits[name]}")
            if p99 >= limits[name] or failures:
                failed.append(name)
        if not alive:
            failed.append("the operator died")
        code = 1 if args.check and failed else 0
        if failed:
            print(f"over the limit: {', '.join(failed)}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory kept: {workdir}")
    return code


if __name__ == "__main__":
    sys.exit(main())

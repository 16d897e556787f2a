#!/usr/bin/env python3
"""e2e: the whole path a user walks, on real parts. The operator in Kubernetes mode with the
libvirt backend, a real QEMU guest booted through libvirtd (scripts/lib/guest.sh), a real
kube-apiserver + etcd (tests/support/control_plane.py, from $KUBEBUILDER_ASSETS) with the
operator on a token of deploy/'s ServiceAccount, and the real kubectl: `kubectl apply` an
ElasticVM asking 3 vCPUs of a guest that runs 1 of 4, and the guest itself reports CPUs 0-2
online; status, printer columns, Events and a refused change (above the maximum) are checked
as a user sees them with kubectl, and the operator is never refused (403).

Usage: kubernetes_on_libvirt_test.py HOTPLUG_OPERATOR
Needs root (it starts libvirtd and boots a guest) and a kube-apiserver; without either it
exits 77 (skipped) and says why (under CI=true a missing kube-apiserver fails). Every wait is
a poll with a deadline; the guest is destroyed and the operator, kube-apiserver and etcd
stopped by PID at the end.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from operator_lib import Cluster, Operator, expect, poll, require_assets, run_checks  # noqa

GUEST_SH = os.path.join(ROOT, "scripts", "lib", "guest.sh")
DOMAIN = f"hotplug-e2e-kube-{os.getpid()}"
SKIPPED = 77


def guest(*args, timeout=300):
    result = subprocess.run([GUEST_SH] + list(args), capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"guest.sh {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def check_apply_plugs_the_real_guest():
    serial_log = guest("boot", DOMAIN, "--vcpus", "1", "--max-vcpus", "4")
    with Cluster("kube-libvirt") as cluster:
        operator = Operator(cluster.workdir, "operator", cluster.operator_kubeconfig,
                            [f"--namespace={cluster.namespace}", "--libvirt-uri=qemu:///system"])
        operator.args = ["--hypervisor=libvirt" if arg == "--hypervisor=fake" else arg
                         for arg in operator.args]
        cluster.operators.append(operator)
        operator.start()
        poll(lambda: operator.probe("/readyz") == 200, "the operator to be ready", 30)

        cluster.apply_vm("web", 3, domain=DOMAIN)
        vm = poll(lambda: cluster.converged("web", 3), "status desired = current = 3, Ready", 120)
        expect(vm["status"]["vcpus"]["enabled"] == "0-2", f"enabled: {vm['status']['vcpus']}")
        expect(vm["status"]["vcpus"]["maximum"] == 4, f"maximum: {vm['status']['vcpus']}")
        # The guest's own word: its serial console reports the CPUs it brought online.
        guest("wait-log", serial_log, r"^HOTPLUG-GUEST cpus=0-2 ", "--timeout", "60")
        plugged = [e for e in cluster.events(**{"involvedObject.name": "web"})
                   if e["reason"] == "VcpuPlugged"]
        expect(len(plugged) == 2, f"two VcpuPlugged Events (one per vCPU call): {plugged}")

        # The printer columns a user reads: NAME DOMAIN NODE VCPUS CURRENT RECOMMENDED MEMORY
        # READY AGE.
        table = cluster.kubectl("get", "evm", "web").stdout.splitlines()
        expect(table[0].split()[:9] == ["NAME", "DOMAIN", "NODE", "VCPUS", "CURRENT",
                                        "RECOMMENDED", "MEMORY", "READY", "AGE"],
               f"kubectl get evm:\n{table}")
        row = table[1].split()  # NODE and RECOMMENDED are empty: no cells
        expect(row[:4] == ["web", DOMAIN, "3", "3"] and row[-2] == "True",
               f"kubectl get evm:\n{table}")

        # Above the domain's maximum: nothing changes, the condition says why.
        cluster.patch_vcpus("web", 9)

        def refused():
            vm = cluster.get_vm("web")
            ready = [c for c in vm["status"].get("conditions", []) if c["type"] == "Ready"]
            return ready and ready[0]["reason"] == "ExceedsMaximum" and vm
        vm = poll(refused, "Ready=False ExceedsMaximum", 60)
        expect(vm["status"]["vcpus"]["current"] == 3, f"still 3 vCPUs: {vm['status']['vcpus']}")
        vcpus = subprocess.run(["virsh", "-c", "qemu:///system", "vcpucount", DOMAIN, "--live",
                                "--active"], capture_output=True, text=True, timeout=30)
        expect(vcpus.stdout.strip() == "3", f"libvirt says {vcpus.stdout.strip()} vCPUs")
        expect(operator.stop() == 0, "the operator exits 0 on SIGTERM")


def main():
    if os.geteuid() != 0:
        print("SKIPPED: e2e tests need root: they start libvirtd and boot a QEMU guest",
              flush=True)
        return SKIPPED
    require_assets()
    guest("ensure-daemons", "--timeout", "120")
    try:
        return run_checks([("apply_plugs_the_real_guest", check_apply_plugs_the_real_guest)],
                          sys.argv)
    finally:
        guest("destroy", DOMAIN)


if __name__ == "__main__":
    sys.exit(main())

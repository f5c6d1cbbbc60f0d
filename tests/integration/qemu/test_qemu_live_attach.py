#!/usr/bin/env python3
"""Live attach and detach of the filter on a running qemu-system-x86_64.

A VM with a virtio-blk disk (no guest OS needed: requests are issued on the
device's own BlockBackend with HMP `qemu-io -d disk0`, synchronous and aio,
so some are in flight while the graph changes) gets the filter inserted with
QMP exactly as docs/qemu-filter.md says: blockdev-add above the current root
node, qom-set drive, and later qom-set back + blockdev-del. A second round
runs with a consumer draining the ring that is SIGKILLed before the detach.

Oracles: no request fails; the final image equals a Python model of every
write (bytearray); the ring holds exactly the writes issued while the filter
was attached, in order, with their payloads; none from before/after.
"""

import os
import signal
import subprocess
import time

import qemutest as qt
from qemutest import check, check_eq

import qmp as qmp_mod

KiB, MiB = 1 << 10, 1 << 20
IMG_SIZE = 16 * MiB


class Vm:
    def __init__(self, env, img):
        self.env = env
        self.sock = env.work / "qmp.sock"
        self.log = open(env.work / "qemu.log", "w")
        argv = [env.tool("qemu-system-x86_64"), "-M", "q35", "-m", "128", "-nodefaults",
                "-display", "none", "-serial", "none", "-accel", "tcg",
                "-qmp", f"unix:{self.sock},server=on,wait=off",
                "-blockdev", f"driver=file,node-name=disk-file,filename={img},"
                             "cache.direct=off,discard=unmap",
                "-blockdev", "driver=raw,node-name=disk-fmt,file=disk-file,discard=unmap",
                "-device", "virtio-blk-pci,drive=disk-fmt,id=disk0"]
        self.proc = env.popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        qmp_mod.wait_for_socket(str(self.sock), 30)
        self.qmp = qmp_mod.QMP.connect(str(self.sock), timeout=60)
        self.model = bytearray(open(img, "rb").read())
        self.pattern = 0

    def io(self, cmd):
        # The BlockBackend is the virtio device's, behind the PCI proxy
        out = self.qmp.hmp(f'qemu-io -d /machine/peripheral/disk0/virtio-backend "{cmd}"')
        check("fail" not in out.lower() and "error" not in out.lower(),
              f"qemu-io {cmd!r} in the VM: {out}")
        return out

    def write(self, offset, length, aio=False):
        """Issues one write of a fresh pattern; returns (offset, length,
        pattern) and updates the model."""
        self.pattern = self.pattern % 250 + 1
        self.io(f"{'aio_write' if aio else 'write'} -P {self.pattern} {offset} {length}")
        self.model[offset:offset + length] = bytes([self.pattern]) * length
        return (offset, length, self.pattern)

    def burst(self, base, n, aio):
        return [self.write(base + i * 8 * KiB, 4 * KiB + 512 * (i % 4), aio) for i in range(n)]

    def attach(self, ring):
        self.qmp.execute("blockdev-add", {
            "driver": "dsvmi", "node-name": "dsvmi0", "file": "disk-fmt",
            "ring": str(ring), "discard": "unmap"})
        self.qmp.execute("qom-set", path="/machine/peripheral/disk0",
                         property="drive", value="dsvmi0")

    def reopen(self, ring, gate=None):
        opts = {"driver": "dsvmi", "node-name": "dsvmi0", "file": "disk-fmt",
                "ring": str(ring), "discard": "unmap"}
        if gate:
            opts["gate"] = str(gate)
        self.qmp.execute("blockdev-reopen", options=[opts])

    def detach(self):
        self.qmp.execute("qom-set", path="/machine/peripheral/disk0",
                         property="drive", value="disk-fmt")
        self.qmp.execute("blockdev-del", **{"node-name": "dsvmi0"})

    def root(self):
        for b in self.qmp.execute("query-block"):
            if "/disk0/" in b.get("qdev", "") or b.get("qdev") == "disk0":
                return b["inserted"]["node-name"]
        raise qt.TestFailure("disk0 not in query-block")

    def quit(self):
        self.io("aio_flush")
        self.qmp.execute("quit")
        self.qmp.close()
        rc = self.proc.wait(timeout=60)
        self.log.close()
        check_eq(rc, 0, "qemu-system-x86_64 exit code")


def ring_writes(env, ring, what):
    """The ring's write frames as (offset, length, pattern); a payload that
    is not one repeated byte fails."""
    frames, _ = env.ring_frames(ring)
    check(not [f for f in frames if f["kind"] == "lost"], f"{what}: Lost frame")
    out = []
    for f in frames:
        if f["kind"] != "write":
            continue
        p = f["payload"][0]
        check(f["payload"] == bytes([p]) * f["length"], f"{what}: payload at {f['offset']}")
        out.append((f["offset"], f["length"], p))
    return out


def check_ring(got, sync, aio, what):
    """Synchronous writes complete one by one: their frames keep issue
    order. Aio writes complete in any order: compared as a set."""
    check_eq(sorted(got), sorted(sync + aio), f"{what}: frames (as a set)")
    got_sync = [w for w in got if w in set(sync)]
    check_eq(got_sync, sync, f"{what}: order of the synchronous writes' frames")


def run(env):
    img = env.work / "disk.img"
    qt.make_image(img, IMG_SIZE, seed=4)
    ring1, ring2, ring3 = (env.work / f"r{i}.ring" for i in (1, 2, 3))
    for r in (ring1, ring2, ring3):
        env.ring_create(r, 16 * MiB)
    gate = env.work / "drop.gate"
    env.gate_create(gate, IMG_SIZE, 4096, "drop-all")
    vm = Vm(env, img)
    try:
        # An operator mistake fails blockdev-add clearly and changes nothing.
        try:
            vm.attach(env.work / "no-such.ring")
            raise qt.TestFailure("blockdev-add with a missing ring succeeded")
        except qmp_mod.QMPError as e:
            check("dsvmi: cannot map ring" in e.desc, f"unclear blockdev-add error: {e.desc}")
        check_eq(vm.root(), "disk-fmt", "root of disk0 after a failed attach")
        vm.burst(0, 8, aio=False)
        vm.burst(1 * MiB, 8, aio=True)  # in flight while the graph changes
        vm.attach(ring1)
        check_eq(vm.root(), "dsvmi0", "root of disk0 after attach")
        sync = vm.burst(2 * MiB, 16, aio=False)
        aio = vm.burst(3 * MiB, 16, aio=True)

        # Mode changes without detaching: blockdev-reopen with a drop-all
        # gate (nothing reaches ring1), then with another ring (ring3 gets
        # the frames), and a reopen naming a missing gate fails cleanly and
        # leaves the node as it was.
        vm.reopen(ring1, gate=gate)
        vm.burst(9 * MiB, 8, aio=True)
        check_eq(env.gate_stat(gate)["writes_dropped"], 8, "drop-all gate after reopen")
        vm.reopen(ring3)
        moved = vm.burst(10 * MiB, 8, aio=False)
        try:
            vm.reopen(ring3, gate=env.work / "no-such-gate")
            raise qt.TestFailure("reopen with a missing gate succeeded")
        except qmp_mod.QMPError as e:
            check("cannot map gate" in e.desc, f"unclear reopen error: {e.desc}")
        moved += vm.burst(11 * MiB, 8, aio=False)

        vm.detach()
        check_eq(vm.root(), "disk-fmt", "root of disk0 after detach")
        vm.burst(4 * MiB, 8, aio=True)
        check_ring(ring_writes(env, ring1, "round 1"), sync, aio, "round 1")
        check_ring(ring_writes(env, ring3, "reopened"), moved, [], "reopened ring")

        # Round 2: a consumer drains, then dies before the detach.
        drain = env.popen([env.ring_tool, "ring-drain", str(ring2)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        check_eq(drain.stdout.readline().strip(), '{"ready": true}', "ring-drain start")
        vm.attach(ring2)
        early = vm.burst(5 * MiB, 16, aio=True)
        drain.send_signal(signal.SIGKILL)
        drain.wait(timeout=30)
        sync = vm.burst(6 * MiB, 16, aio=False)
        aio = vm.burst(7 * MiB, 8, aio=True)
        vm.detach()
        vm.burst(8 * MiB, 8, aio=False)
        # What the dead consumer had not released is delivered again; what
        # was produced after it died is all there.
        got = ring_writes(env, ring2, "round 2")
        check(set(got) <= set(early + sync + aio), "round 2: a frame nobody wrote")
        check_ring([w for w in got if w not in set(early)], sync, aio, "round 2 after the kill")
    finally:
        try:
            vm.quit()
        finally:
            if vm.proc.poll() is None:
                vm.proc.kill()
    with open(img, "rb") as f:
        check(f.read() == bytes(vm.model), "image differs from the model of all writes")


if __name__ == "__main__":
    qt.main(run)

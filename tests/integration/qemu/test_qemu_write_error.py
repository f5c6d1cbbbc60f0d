#!/usr/bin/env python3
"""A request the layer below fails becomes a Lost record (issue #4).

A blkdebug node below the filter injects EIO into every write, write-zeroes
and discard that covers one sector (1 MiB). The filter must return the
child's error unchanged (qemu-io prints exactly what it prints through the
same blkdebug node without the filter, and both images end up identical),
and because a failed write may still have changed part of its range, each
failed request the gate passed is recorded as lost: the ring holds no frame
for it but a Lost record covering it, in band before the next frame. A
failed request the gate did NOT pass leaves no trace.
"""

import filecmp
import shutil

import qemutest as qt
from qemutest import check, check_eq

KiB, MiB = 1 << 10, 1 << 20
IMG_SIZE = 16 * MiB
BAD = 1 * MiB  # the sector blkdebug fails

# (command, fails?); -q: no timing lines, so the outputs compare exactly
COMMANDS = [
    ("write -q -P 0x11 0 64k", False),        # seq 0; also arms the blkdebug rule
    (f"write -q -P 0x22 {BAD} 64k", True),    # seq 1: lost
    (f"write -q -z {BAD} 4k", True),          # seq 2: lost
    (f"discard -q {BAD - 4 * KiB} 8k", True), # seq 3: lost
    ("write -q -P 0x33 2M 4k", False),        # Lost record (seqs 1..3), then seq 4
]
LOST = [(BAD, 64 * KiB), (BAD, 4 * KiB), (BAD - 4 * KiB, 8 * KiB)]


def blkdebug(image):
    return (f"driver=blkdebug,image.driver=file,image.filename={image},"
            f"inject-error.0.event=pwritev,inject-error.0.errno=5,"
            f"inject-error.0.sector={BAD // 512}")


def opts_with_filter(image, ring, gate=None):
    s = f"driver=dsvmi,ring={ring},discard=unmap,file.driver=raw"
    for kv in blkdebug(image).split(","):
        s += ",file.file." + kv
    if gate:
        s += f",gate={gate}"
    return s


def opts_plain(image):
    s = "driver=raw,discard=unmap"
    for kv in blkdebug(image).split(","):
        s += ",file." + kv
    return s


def qemu_io(env, image_opts):
    argv = [env.tool("qemu-io"), "-t", "writeback", "--image-opts", image_opts]
    for c, _ in COMMANDS:
        argv += ["-c", c]
    p = env.run(argv, check_rc=False)
    return p.returncode, p.stdout, p.stderr


def run(env):
    img, twin, gated = env.work / "err.img", env.work / "twin.img", env.work / "gated.img"
    qt.make_image(img, IMG_SIZE, seed=4)
    shutil.copyfile(img, twin)
    shutil.copyfile(img, gated)
    ring = env.work / "err.ring"
    env.ring_create(ring, 1 * MiB)

    got = qemu_io(env, opts_with_filter(img, ring))
    want = qemu_io(env, opts_plain(twin))
    check_eq(got, want, "qemu-io through the filter vs the same blkdebug node without it")
    errors = [l for l in (want[1] + want[2]).splitlines() if "Input/output error" in l]
    check_eq(len(errors), sum(f for _, f in COMMANDS),
             f"injected errors reported by qemu-io (output: {want})")
    check(filecmp.cmp(img, twin, shallow=False), "image differs from the twin written without the filter")

    frames, stats = env.ring_frames(ring)
    kinds = [f["kind"] for f in frames]
    check_eq(kinds, ["write", "lost", "write", "flush"], "records in the ring")
    check_eq((frames[0]["seq"], frames[0]["offset"], frames[0]["length"]), (0, 0, 64 * KiB), "first write")
    lf = frames[1]
    check_eq((lf["first_lost_seq"], lf["lost_frames"], lf["seq"]), (1, 3, 3),
             "Lost record: first sequence number, count, own sequence number")
    check_eq(lf["lost_bytes"], sum(n for _, n in LOST), "Lost record: bytes")
    lo = min(o for o, _ in LOST)
    hi = max(o + n for o, n in LOST)
    check_eq((lf["offset"], lf["offset"] + lf["length"]), (lo, hi), "Lost record: disk range")
    check_eq((frames[2]["seq"], frames[2]["offset"], frames[2]["payload"]),
             (4, 2 * MiB, b"\x33" * 4096), "the write after the failures")
    check_eq(frames[3]["seq"], 5, "qemu-io's closing flush")
    check_eq(stats["produced_frames"], 6, "produced frames")
    check_eq(stats["dropped_frames"], 3, "dropped frames (the failed requests)")
    check_eq(stats["delivered_frames"] + stats["dropped_frames"], stats["produced_frames"],
             "delivered + dropped == produced")
    check_eq(stats["lost_pending_frames"], 0, "nothing pending")

    # A gate that passes only the first 64 KiB: the failed requests at 1 MiB
    # were never the engine's business, so nothing is recorded for them.
    gate = env.work / "low.gate"
    env.gate_create(gate, IMG_SIZE, 4096, "set", [(0, 16)])
    ring2 = env.work / "gated.ring"
    env.ring_create(ring2, 1 * MiB)
    got = qemu_io(env, opts_with_filter(gated, ring2, gate))
    check_eq(got, want, "qemu-io through a gated filter vs without it")
    frames, stats = env.ring_frames(ring2)
    check_eq([f["kind"] for f in frames], ["write", "flush"], "records in the gated ring")
    check_eq(stats["dropped_frames"], 0, "dropped frames with the gate closed on the failures")


if __name__ == "__main__":
    qt.main(run)

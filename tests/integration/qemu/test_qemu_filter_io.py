#!/usr/bin/env python3
"""qemu-io through the dsvmi filter produces exactly the expected frames.

Oracles: the frames are compared with the requests this script issued (kind,
offset, length, payload = the qemu-io pattern bytes); the image written
through the filter must be byte-identical (cmp) to a twin image that stock
I/O (the same qemu-io script without the filter) wrote, and every written
range must read back with `qemu-io read -P`.
"""

import filecmp
import shutil

import qemutest as qt
from qemutest import check, check_eq

MiB = 1 << 20
KiB = 1 << 10
IMG_SIZE = 4 * MiB

# (qemu-io command, expected frame or None). Payload patterns are qemu-io's
# -P byte repeated over the request.
SCRIPT = [
    ("write -P 0x11 0 64k", ("write", 0, 64 * KiB, 0x11)),
    ("write -P 0x22 4097 3000", ("write", 4097, 3000, 0x22)),  # unaligned
    ("writev -P 0x33 128k 4k 8k 512", ("write", 128 * KiB, 4 * KiB + 8 * KiB + 512, 0x33)),
    ("write -z 256k 64k", ("write_zeroes", 256 * KiB, 64 * KiB, None)),
    ("discard 512k 64k", ("discard", 512 * KiB, 64 * KiB, None)),
    ("flush", ("flush", 0, 0, None)),
    ("write -P 0x44 1M 1M", ("write", 1 * MiB, 1 * MiB, 0x44)),
    ("aio_write -P 0x55 3M 4k", ("write", 3 * MiB, 4 * KiB, 0x55)),
    ("aio_flush", None),  # waits for the aio_write; no flush request
]
# What must read back afterwards (offset, length, pattern).
READBACK = [(0, 4097, 0x11), (4097, 3000, 0x22), (4097 + 3000, 64 * KiB - 7097, 0x11),
            (128 * KiB, 12800, 0x33), (256 * KiB, 64 * KiB, 0),
            (1 * MiB, 1 * MiB, 0x44), (3 * MiB, 4 * KiB, 0x55)]


def frame_tuple(f):
    return (f["kind"], f["offset"], f["length"])


def check_frames(frames, expected, what):
    """frames (from the ring) equal expected exactly."""
    data = [f for f in frames if f["kind"] != "lost"]
    check_eq([frame_tuple(f) for f in data], [e[:3] for e in expected], what)
    for i, (kind, off, length, pattern) in enumerate(expected):
        f = data[i]
        check_eq(frame_tuple(f), (kind, off, length), f"{what}: frame {i}")
        if kind == "write":
            check(f["payload"] is not None, f"{what}: frame {i} has no payload")
            check_eq(len(f["payload"]), length, f"{what}: frame {i} payload length")
            check(f["payload"] == bytes([pattern]) * length,
                  f"{what}: frame {i} payload is not the pattern 0x{pattern:02x}")
        else:
            check(not f["payload"], f"{what}: frame {i} ({kind}) carries a payload")
    check(not [f for f in frames if f["kind"] == "lost"], f"{what}: a Lost frame in a big ring")


def test_mix(env):
    work = env.work
    img, twin = work / "disk.img", work / "twin.img"
    qt.make_image(img, IMG_SIZE)
    shutil.copyfile(img, twin)
    ring = work / "ring"
    env.ring_create(ring, 16 * MiB)

    cmds = [c for c, _ in SCRIPT]
    env.qemu_io(qt.filter_opts(img, ring), cmds)
    env.qemu_io(qt.plain_opts(twin), cmds)

    # qemu-io flushes the image when it closes it: one more Flush.
    expected = [e for _, e in SCRIPT if e is not None] + [("flush", 0, 0, None)]
    frames, _ = env.ring_frames(ring)
    check_frames(frames, expected, "scripted mix")
    check(filecmp.cmp(img, twin, shallow=False),
          "image written through the filter differs from the one written without it")
    env.qemu_io(qt.plain_opts(img),
                [f"read -P 0x{p:02x} {o} {n}" for o, n, p in READBACK])

    # Writethrough (qemu-io's default, a guest without a write cache): each
    # write is FUA, which the block layer turns into write + flush above us.
    env.qemu_io(qt.filter_opts(img, ring), ["write -P 0x66 2M 4k"], cache="writethrough")
    frames, _ = env.ring_frames(ring)
    check_frames(frames, [("write", 2 * MiB, 4 * KiB, 0x66), ("flush", 0, 0, None),
                          ("flush", 0, 0, None)], "writethrough write")


def test_qcow2(env):
    """Above a qcow2 format node the frames carry guest offsets, the same as
    for raw; the image equals a twin written without the filter (qemu-img
    compare)."""
    work = env.work
    img, twin = work / "disk.qcow2", work / "twin.qcow2"
    for f in (img, twin):
        env.run([env.tool("qemu-img"), "create", "-q", "-f", "qcow2", f, str(IMG_SIZE)])
    ring = work / "ring-qcow2"
    env.ring_create(ring, 16 * MiB)
    cmds = [c for c, _ in SCRIPT]
    env.qemu_io(qt.filter_opts(img, ring, fmt="qcow2"), cmds)
    env.qemu_io(qt.plain_opts(twin, fmt="qcow2"), cmds)
    expected = [e for _, e in SCRIPT if e is not None] + [("flush", 0, 0, None)]
    frames, _ = env.ring_frames(ring)
    check_frames(frames, expected, "qcow2")
    env.run([env.tool("qemu-img"), "compare", "-f", "qcow2", "-F", "qcow2", img, twin])


def test_limits_inherited(env):
    """The filter takes its child's alignment and transfer limits, so the
    requests it sees (and frames) are the child's, as if it were absent.
    blkdebug right under the filter imposes align=4096 and max-transfer=64k."""
    work = env.work
    img = work / "aligned.img"
    qt.make_image(img, IMG_SIZE, seed=2)
    ring = work / "ring-aligned"
    env.ring_create(ring, 16 * MiB)
    opts = (f"driver=dsvmi,ring={ring},file.driver=blkdebug,"
            f"file.align=4096,file.max-transfer=65536,file.image.driver=raw,"
            f"file.image.file.driver=file,file.image.file.filename={img}")
    env.qemu_io(opts, ["write -P 0x66 5000 100", "write -P 0x77 256k 200k"])
    frames = [f for f in env.ring_frames(ring)[0] if f["kind"] == "write"]
    # 5000+100 lies in block [4096, 8192): read-modify-write above the filter,
    # so the frame is that whole block; 200k at 256k splits at 64k.
    want = [("write", 4096, 4096)] + [("write", 256 * KiB + i * 64 * KiB, 64 * KiB)
                                     for i in range(3)] + [("write", 448 * KiB, 8 * KiB)]
    check_eq([frame_tuple(f) for f in frames], want, "frames under align=4096,max-transfer=64k")
    with open(img, "rb") as f:
        f.seek(4096)
        block = f.read(4096)
    check_eq(frames[0]["payload"], block, "RMW frame payload vs the block on disk")
    check_eq(block[5000 - 4096:5100 - 4096], b"\x66" * 100, "written bytes in the block")
    for i, fr in enumerate(frames[1:]):
        check(fr["payload"] == b"\x77" * fr["length"], f"split frame {i} payload")


def test_open_errors(env):
    """An operator mistake fails blockdev open with a message naming it."""
    img = env.work / "e.img"
    qt.make_image(img, MiB, seed=3)
    p = env.qemu_io(qt.filter_opts(img, env.work / "no-such-ring"), ["read 0 512"],
                    check_rc=False)
    out = p.stdout + p.stderr
    check(p.returncode != 0, f"opening a missing ring succeeded: {out}")
    check("dsvmi: cannot map ring" in out and "no-such-ring" in out,
          f"unclear error for a missing ring: {out}")
    p = env.qemu_io(f"driver=dsvmi,file.driver=file,file.filename={img}", ["read 0 512"],
                    check_rc=False)
    out = p.stdout + p.stderr
    check(p.returncode != 0 and "'ring' is required" in out,
          f"missing ring option not reported: {out}")
    junk = env.work / "junk-ring"
    junk.write_bytes(b"\0" * 65536)
    p = env.qemu_io(qt.filter_opts(img, junk), ["read 0 512"], check_rc=False)
    out = p.stdout + p.stderr
    check(p.returncode != 0 and "cannot map ring" in out,
          f"a file that is not a ring was accepted: {out}")


def run(env):
    test_mix(env)
    test_qcow2(env)
    test_limits_inherited(env)
    test_open_errors(env)


if __name__ == "__main__":
    qt.main(run)

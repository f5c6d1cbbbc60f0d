#!/usr/bin/env python3
"""The gate decides which requests reach the ring.

Oracle: a Python set of grain numbers (the reference model): a request
passes iff one of the grains overlapping [offset, offset + length) is in the
set. Drop-all passes no request, pass-all every one, and the reader's shared
counters add up to the requests issued. The image must be the same in every
mode (cmp against a twin written without the filter): the gate never changes
what reaches the disk.
"""

import filecmp
import random
import shutil

import qemutest as qt
from qemutest import check, check_eq

KiB, MiB = 1 << 10, 1 << 20
IMG_SIZE = 8 * MiB
GRAIN = 4096


def make_requests(seed):
    """A deterministic mix of writes, write-zeroes and discards of varied
    size and alignment: (qemu-io command, kind, offset, length, pattern)."""
    rnd = random.Random(seed)
    reqs = []
    for i in range(120):
        kind = rnd.choice(["write"] * 6 + ["write_zeroes", "discard"])
        length = rnd.choice([512, 4096, 5000, 8192, 65536, 3 * 4096 + 100])
        offset = rnd.randrange(0, IMG_SIZE - length)
        if kind == "discard":  # discards are sector-granular
            offset -= offset % 512
            length -= length % 512
        pattern = 1 + i % 250
        cmd = {"write": f"write -P {pattern} {offset} {length}",
               "write_zeroes": f"write -z {offset} {length}",
               "discard": f"discard {offset} {length}"}[kind]
        reqs.append((cmd, kind, offset, length, pattern))
    return reqs


def touches(grains, offset, length):
    first = offset // GRAIN
    last = (offset + length - 1) // GRAIN
    return any(g in grains for g in range(first, last + 1))


def run_mode(env, name, mode, ranges, reqs):
    img = env.work / f"{name}.img"
    twin = env.work / f"{name}-twin.img"
    qt.make_image(img, IMG_SIZE, seed=7)
    shutil.copyfile(img, twin)
    ring = env.work / f"{name}.ring"
    gate = env.work / f"{name}.gate"
    env.ring_create(ring, 32 * MiB)
    env.gate_create(gate, IMG_SIZE, GRAIN, mode, ranges)

    cmds = [r[0] for r in reqs]
    env.qemu_io(qt.filter_opts(img, ring, gate=gate), cmds)
    env.qemu_io(qt.plain_opts(twin), cmds)
    check(filecmp.cmp(img, twin, shallow=False), f"{name}: image differs from the twin")

    frames, stats = env.ring_frames(ring)
    data = [f for f in frames if f["kind"] not in ("flush", "lost")]
    check(not [f for f in frames if f["kind"] == "lost"], f"{name}: Lost frame in a big ring")
    return data, env.gate_stat(gate)


def run(env):
    reqs = make_requests(seed=11)

    # drop-all: nothing passes, every request counted as dropped.
    data, counters = run_mode(env, "drop", "drop-all", [], reqs)
    check_eq(len(data), 0, "drop-all: frames in the ring")
    check_eq(counters["writes_dropped"], len(reqs), "drop-all: writes_dropped")
    check_eq(counters["writes_passed"], 0, "drop-all: writes_passed")

    # pass-all: every request, in order.
    data, counters = run_mode(env, "pass", "pass-all", [], reqs)
    check_eq([(f["kind"], f["offset"], f["length"]) for f in data],
             [(k, o, n) for _, k, o, n, _ in reqs], "pass-all: frames")
    check_eq(counters["writes_passed"], len(reqs), "pass-all: writes_passed")

    # set: grains chosen so that some requests touch them only at one edge.
    rnd = random.Random(5)
    grains = set()
    ranges = []
    for _ in range(40):
        first = rnd.randrange(0, IMG_SIZE // GRAIN - 8)
        count = rnd.choice([1, 1, 2, 5])
        ranges.append((first, count))
        grains.update(range(first, first + count))
    want = [(k, o, n) for _, k, o, n, _ in reqs if touches(grains, o, n)]
    check(0 < len(want) < len(reqs), f"test set-up: {len(want)} of {len(reqs)} requests pass")
    data, counters = run_mode(env, "set", "set", ranges, reqs)
    check_eq([(f["kind"], f["offset"], f["length"]) for f in data], want, "set gate: frames")
    for f, (cmd, kind, off, length, pattern) in zip(
            data, [r for r in reqs if touches(grains, r[2], r[3])]):
        if kind == "write":
            check(f["payload"] == bytes([pattern]) * length, f"set gate: payload of {cmd}")
    check_eq(counters["writes_passed"], len(want), "set gate: writes_passed")
    check_eq(counters["writes_dropped"], len(reqs) - len(want), "set gate: writes_dropped")


if __name__ == "__main__":
    qt.main(run)

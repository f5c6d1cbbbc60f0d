#!/usr/bin/env python3
"""A full ring (no consumer draining) never fails a write.

With the smallest ring and far more payload than fits, every qemu-io write
must succeed and read back (qemu-io read -P, and cmp with a twin written
without the filter); the ring holds a prefix of the writes; a Lost record goes into the ring only
together with the next frame that fits (here at most qemu-io's closing
Flush); delivered + lost (in band or pending in the header) equal the
requests issued, and the lost range covers every write missing from the
ring.
"""

import filecmp
import shutil

import qemutest as qt
from qemutest import check, check_eq

KiB, MiB = 1 << 10, 1 << 20
IMG_SIZE = 16 * MiB
N_WRITES = 200
SIZE = 4 * KiB  # 200 x 4 KiB = 800 KiB of payload into a 64 KiB ring


def run(env):
    img, twin = env.work / "full.img", env.work / "twin.img"
    qt.make_image(img, IMG_SIZE, seed=9)
    shutil.copyfile(img, twin)
    ring = env.work / "small.ring"
    env.ring_create(ring, 64 * KiB)

    writes = [(i * SIZE * 2 % (IMG_SIZE - SIZE), 1 + i % 250) for i in range(N_WRITES)]
    cmds = [f"write -P {p} {o} {SIZE}" for o, p in writes]
    env.qemu_io(qt.filter_opts(img, ring), cmds)  # fails on any "write failed"
    env.qemu_io(qt.plain_opts(twin), cmds)
    check(filecmp.cmp(img, twin, shallow=False), "image differs from the twin")
    # The last write to each offset is what must read back.
    last = {}
    for o, p in writes:
        last[o] = p
    env.qemu_io(qt.plain_opts(img), [f"read -P {p} {o} {SIZE}" for o, p in sorted(last.items())])

    frames, stats = env.ring_frames(ring)
    # The producer tried N_WRITES writes and the Flush qemu-io sends at close.
    tried = N_WRITES + 1
    data = [f for f in frames if f["kind"] == "write"]
    lost = [f for f in frames if f["kind"] == "lost"]
    k = len(data)
    check(1 <= k < N_WRITES, f"{k} of {N_WRITES} writes in a 64 KiB ring")
    # The ring keeps the oldest frames: a prefix of the writes, in order.
    for i, f in enumerate(data):
        o, p = writes[i]
        check_eq((f["seq"], f["offset"], f["length"]), (i, o, SIZE), f"frame {i}")
        check(f["payload"] == bytes([p]) * SIZE, f"frame {i} payload")
    # The ring never has room for a write (and the Lost record that must
    # precede it) again. Only qemu-io's closing Flush (no payload) may still
    # fit with its Lost record: then the Lost frame covers every dropped write
    # and the Flush is the last record; otherwise the whole loss stays pending
    # in the header.
    rest = [o for o, _ in writes[k:]]
    pending = stats["lost_pending_frames"]
    if lost:
        check_eq(len(lost), 1, "Lost frames in band")
        lf = lost[0]
        check_eq([f["kind"] for f in frames[-2:]], ["lost", "flush"], "the last two records")
        check_eq((lf["first_lost_seq"], lf["lost_frames"], lf["seq"]), (k, N_WRITES - k, N_WRITES - 1),
                 "Lost frame: first sequence number, count, own sequence number")
        check(lf["offset"] <= min(rest) and max(rest) + SIZE <= lf["offset"] + lf["length"],
              f"Lost range {lf['offset']}+{lf['length']} misses dropped writes")
        check_eq(k + lf["lost_frames"] + 1 + pending, tried, "delivered + lost in band + flush + pending")
        check_eq(pending, 0, "nothing left pending")
    else:
        check_eq(frames[-1]["kind"], "write", "the last record")
        check_eq(k + pending, tried, "delivered + lost pending = requests tried")
        check_eq(stats["lost_pending_first_seq"], k, "pending loss: first sequence number")
        check(stats["lost_pending_offset"] <= min(rest) and
              max(rest) + SIZE <= stats["lost_pending_end"],
              f"pending lost range [{stats['lost_pending_offset']}, "
              f"{stats['lost_pending_end']}) misses dropped writes")
    check_eq(stats["dropped_bytes"], (N_WRITES - k) * SIZE, "dropped_bytes")


if __name__ == "__main__":
    qt.main(run)

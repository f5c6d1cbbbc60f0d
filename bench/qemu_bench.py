#!/usr/bin/env python3
"""Block-layer cost of the dsvmi filter, measured with `qemu-img bench`.

    DSVMI_QEMU_PREFIX=$(qemu-patches/build.sh --print-prefix build) \\
        bench/qemu_bench.py --build-dir build [--reps 15] [--seconds 1]

Writes (queue depth 32) to one raw image, for O_DIRECT + Linux AIO
(-t none -i native) and for the page cache (-t writeback), at 4 KiB and
64 KiB, and to QEMU's `null-co` driver (the block layer alone, no I/O), in
five modes:
  none      no filter (the baseline)
  cor       QEMU's own pass-through filter (copy-on-read, which forwards
            writes untouched): what ANY filter node costs in QEMU 7.2, the
            floor under the dsvmi rows
  drop-all  dsvmi filter with a drop-all gate (attached but silent)
  metadata  dsvmi filter with a gate whose set grains look like ext4
            metadata (every 128 MiB group's first 2 MiB, a 32 MiB journal),
            a consumer draining the ring
  pass-all  dsvmi filter without a gate, a consumer (qemu_ring_tool
            ring-drain) draining the ring
Repetitions are interleaved (each repetition runs every mode, in a rotated
order) and each mode is reported as the median of its per-repetition ratio
to `none` from the same repetition, with a bootstrap 95% confidence interval
of that median and the min..max of the ratios: absolute numbers on a shared
2-core machine drift, ratios taken close together much less. With O_DIRECT
and null-co (qemu-img does everything in its one main thread) qemu-img runs
on CPU 0 and the consumer on CPU 1 (--no-pin to let the scheduler place
them): unpinned, migrations alone spread the per-repetition ratios to ±15%.
The writeback configs are never pinned: their I/O runs in qemu-img's
thread pool, which pinning would squeeze onto the main thread's CPU.
The null-co rows also give the cost each mode adds per request in ns: that
is the filter's own CPU price, free of disk noise. Prints Markdown tables.
"""

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

KiB, MiB = 1 << 10, 1 << 20
GRAIN = 4096
MODES = ["none", "cor", "drop-all", "metadata", "pass-all"]
DRAINED = ("metadata", "pass-all")  # modes whose frames a consumer drains
CONFIGS = [  # (label, backend, qemu-img cache, aio, request size)
    ("O_DIRECT native 4 KiB", "disk", "none", "native", 4 * KiB),
    ("O_DIRECT native 64 KiB", "disk", "none", "native", 64 * KiB),
    ("writeback 4 KiB", "disk", "writeback", "threads", 4 * KiB),
    ("writeback 64 KiB", "disk", "writeback", "threads", 64 * KiB),
    # The block layer alone: null-co completes every request at once, so
    # these rows are pure per-request CPU, the filter's cost at its most
    # visible (and the least noisy numbers here).
    ("null-co 4 KiB", "null", "writeback", "threads", 4 * KiB),
    ("null-co 64 KiB", "null", "writeback", "threads", 64 * KiB),
]
QEMU_CPU, CONSUMER_CPU = 0, 1  # with --pin (the default on >= 2 CPUs)


def die(msg):
    print(f"qemu_bench: {msg}", file=sys.stderr)
    sys.exit(1)


class Bench:
    def __init__(self, args):
        prefix = os.environ.get("DSVMI_QEMU_PREFIX")
        if not prefix:
            die("DSVMI_QEMU_PREFIX is not set (qemu-patches/build.sh --print-prefix BUILD)")
        self.qemu_img = Path(prefix) / "bin" / "qemu-img"
        build = Path(args.build_dir).resolve()
        self.tool = build / "tests" / "qemu_ring_tool"
        for need in (self.qemu_img, self.tool, build / "lib" / "libdsvmi-producer.so"):
            if not need.exists():
                die(f"{need} missing")
        self.env = dict(os.environ, LD_LIBRARY_PATH=str(build / "lib"))
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="dsvmi-qemu-bench-", dir=args.work_dir))
        # Rings and gates live in tmpfs, as in production: a ring on a disk
        # file system would add page-cache writeback of the ring itself.
        self.shm = Path(tempfile.mkdtemp(prefix="dsvmi-qemu-bench-", dir=args.shm_dir))
        self.img = self.work / "disk.img"
        self.size = args.size_mib * MiB

    def run(self, argv, **kw):
        p = subprocess.run([str(a) for a in argv], env=self.env, capture_output=True,
                           text=True, **kw)
        if p.returncode != 0:
            die(f"{' '.join(map(str, argv))} exited {p.returncode}: {p.stderr[-2000:]}")
        return p

    def setup(self):
        # Written once in full, so O_DIRECT writes never meet unwritten extents.
        chunk = b"\xa5" * MiB
        with open(self.img, "wb") as f:
            for _ in range(self.size // MiB):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        self.rings = {m: self.shm / f"{m}.ring" for m in MODES[1:]}
        for ring in self.rings.values():
            self.run([self.tool, "ring-create", ring, self.args.ring_mib * MiB])
        self.gates = {"drop-all": self.shm / "drop.gate", "metadata": self.shm / "meta.gate"}
        self.run([self.tool, "gate-create", self.gates["drop-all"], self.size, GRAIN, "drop-all"])
        group = 128 * MiB // GRAIN
        ranges = [f"{g}+{2 * MiB // GRAIN}" for g in range(0, self.size // GRAIN, group)]
        journal = (self.size // 2) // GRAIN
        ranges.append(f"{journal}+{32 * MiB // GRAIN}")
        self.run([self.tool, "gate-create", self.gates["metadata"], self.size, GRAIN, "set",
                  *ranges])
        self.meta_fraction = (len(ranges) - 1) * 2 * MiB / self.size + 32 * MiB / self.size

    def image_opts(self, mode, backend):
        # What sits under the filter: the raw image, or null-co of the same
        # size (read-zeroes off: nothing is ever read back).
        if backend == "null":
            child = f"driver=null-co,size={self.size}"
        else:
            child = f"driver=raw,file.driver=file,file.filename={self.img}"
        if mode == "none":
            return child
        under = ",".join("file." + kv for kv in child.split(","))
        if mode == "cor":
            return f"driver=copy-on-read,{under}"
        opts = f"driver=dsvmi,ring={self.rings[mode]},{under}"
        if mode in self.gates:
            opts += f",gate={self.gates[mode]}"
        return opts

    def pinned(self, cpu, aio):
        if not self.args.pin or aio == "threads":
            return None
        return lambda: os.sched_setaffinity(0, {cpu})

    def bench_once(self, mode, backend, cache, aio, size, count):
        """Runs one qemu-img bench; returns (IOPS, CPU seconds per request,
        frames dropped)."""
        drain = None
        if mode in DRAINED:
            drain = subprocess.Popen([str(self.tool), "ring-drain", str(self.rings[mode])] +
                                     (["--spin"] if self.args.spin else []),
                                     env=self.env, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=self.pinned(CONSUMER_CPU, aio))
            if drain.stdout.readline().strip() != '{"ready": true}':
                die("ring-drain did not start")
        argv = [self.qemu_img, "bench", "-w", "-c", count, "-d", 32, "-s", size,
                "-t", cache, "-i", aio, "--image-opts", self.image_opts(mode, backend)]
        # wait4 gives this qemu-img's own CPU time: a second measure, much
        # less disturbed by other load on the machine than wall time.
        with tempfile.TemporaryFile(mode="w+") as errf:
            proc = subprocess.Popen([str(a) for a in argv], env=self.env,
                                    stdout=subprocess.PIPE, stderr=errf, text=True,
                                    preexec_fn=self.pinned(QEMU_CPU, aio))
            out = proc.stdout.read()
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.stdout.close()
            if proc.returncode != 0:
                errf.seek(0)
                die(f"qemu-img bench exited {proc.returncode}: {errf.read()[-2000:]}")
        cpu_per_req = (ru.ru_utime + ru.ru_stime) / count
        m = re.search(r"Run completed in ([0-9.]+) seconds", out)
        if not m:
            die(f"no timing in qemu-img bench output: {out}")
        dropped = 0
        if drain:
            drain.send_signal(signal.SIGTERM)
            out, _ = drain.communicate(timeout=60)
            stats = json.loads(out.strip().splitlines()[-1])["stats"]
            dropped = stats["dropped_frames"]
        return count / max(float(m.group(1)), 1e-6), cpu_per_req, dropped

    def run_all(self):
        rows = []
        for label, backend, cache, aio, size in CONFIGS:
            # Size the run from a calibration of the baseline.
            iops, _, _ = self.bench_once("none", backend, cache, aio, size, 2000)
            count = max(2000, int(iops * self.args.seconds))
            per_mode = {m: [] for m in MODES}
            cpu = {m: [] for m in MODES}
            drops = {m: 0 for m in MODES}
            # CPU time is the whole process's: opening the image and mapping
            # the ring and gate (MAP_POPULATE of the doubly mapped ring: tens
            # of ms) would be charged to the requests. Take that start-up
            # and exit CPU off: the least of three one-request runs.
            startup = {m: min(self.bench_once(m, backend, cache, aio, size, 1)[1]
                              for _ in range(3)) for m in MODES}
            for rep in range(self.args.reps):
                order = MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]
                for mode in order:
                    v, c, d = self.bench_once(mode, backend, cache, aio, size, count)
                    per_mode[mode].append(v)
                    cpu[mode].append(max(c * count - startup[mode], 1e-9) / count)
                    drops[mode] += d
                print(f"# {label} rep {rep + 1}: " +
                      ", ".join(f"{m} {per_mode[m][-1]:.0f}" for m in MODES),
                      file=sys.stderr, flush=True)
            rows.append((label, backend, count, per_mode, cpu, drops))
        return rows

    def report(self, rows):
        a = self.args
        pin = (f"qemu-img pinned to CPU {QEMU_CPU}, consumer to CPU {CONSUMER_CPU} (not in "
               f"the writeback configs, whose I/O runs in qemu-img's thread pool)" if a.pin
               else "not pinned")
        print(f"`qemu-img bench -w -d 32`, {a.size_mib} MiB raw image (or null-co of that size), "
              f"{a.reps} interleaved repetitions of ~{a.seconds} s per mode, {pin}; metadata "
              f"gate = {self.meta_fraction * 100:.1f}% of grains set. Cells: median "
              f"[bootstrap 95% CI of the median] (min..max) of the per-repetition ratio to "
              f"`none`; for CPU (qemu-img's user+sys time less its start-up, the least of "
              f"three one-request runs), `none`'s CPU over the mode's, so < 1 means it "
              f"costs more. "
              f"`cor` = QEMU's own pass-through filter (copy-on-read): the cost of any "
              f"filter node.\n")
        print("| config | metric | none | " + " | ".join(MODES[1:]) + " |")
        print("|---" * (len(MODES) + 2) + "|")
        for label, backend, count, per_mode, cpu, drops in rows:
            metrics = [("IOPS", per_mode, False), ("qemu-img CPU/request", cpu, True)]
            for metric, data, invert in metrics:
                base = data["none"]
                if invert:
                    ratios = {m: [b / x for x, b in zip(data[m], base)] for m in MODES[1:]}
                    shown = f"{statistics.median(base) * 1e6:,.2f}µs"
                else:
                    ratios = {m: [x / b for x, b in zip(data[m], base)] for m in MODES[1:]}
                    shown = f"{statistics.median(base):,.0f}"
                cells = []
                for r in ratios.values():
                    lo, hi = median_ci(r)
                    cells.append(f"**{statistics.median(r):.3f}x** [{lo:.3f}..{hi:.3f}] "
                                 f"({min(r):.2f}..{max(r):.2f})")
                print(f"| {label} | {metric} | {shown} | " + " | ".join(cells) + " |")
            if backend == "null":
                # Wall time per request added by each mode, paired per
                # repetition: the filter's own price in the block layer.
                base = [1e9 / x for x in per_mode["none"]]
                cells = []
                for m in MODES[1:]:
                    d = [1e9 / x - b for x, b in zip(per_mode[m], base)]
                    lo, hi = median_ci(d)
                    cells.append(f"{statistics.median(d):+.0f} ns [{lo:+.0f}..{hi:+.0f}]")
                print(f"| {label} | time per request | {statistics.median(base):.0f} ns | " +
                      " | ".join(cells) + " |")
            total = count * len(per_mode["none"])
            print(f"| {label} | frames dropped | | | | {drops['metadata']} of {total} | "
                  f"{drops['pass-all']} of {total} |")


def median_ci(values, rounds=2000):
    """Percentile-bootstrap 95% interval of the median (fixed seed: the same
    data always prints the same interval)."""
    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return meds[int(0.025 * rounds)], meds[int(0.975 * rounds) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--ring-mib", type=int, default=64)
    ap.add_argument("--work-dir", default=os.environ.get("TMPDIR", "/var/tmp"),
                    help="where the image goes (a disk file system)")
    ap.add_argument("--shm-dir", default="/dev/shm", help="where rings and gates go (tmpfs)")
    ap.add_argument("--spin", action="store_true",
                    help="the consumer polls instead of sleeping on the doorbell")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="let the scheduler place qemu-img and the consumer")
    ap.add_argument("--config", action="append",
                    help="only configs whose label contains this (repeatable)")
    args = ap.parse_args()
    if args.reps < 5:
        die("--reps must be at least 5")
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        args.pin = False
    if args.config:
        CONFIGS[:] = [c for c in CONFIGS if any(s in c[0] for s in args.config)]
    b = Bench(args)
    try:
        b.setup()
        b.report(b.run_all())
    finally:
        for d in (b.work, b.shm):
            for f in d.iterdir():
                f.unlink()
            d.rmdir()


if __name__ == "__main__":
    main()

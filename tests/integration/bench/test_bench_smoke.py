#!/usr/bin/python3
"""`dsvmi bench` end to end, smallest configuration (label: integration).

Runs `build/dsvmi bench --tiny --workloads postmark --modes none,full
--reps 1 --accel tcg --no-block-layer` and checks the result files, not
speed (no timed assertions):
  - results.json parses; the postmark row has both modes, positive times and
    a finite, positive ratio; every expected phase was timed;
  - the guest's own count of sectors written (/sys/block/vda/stat) is > 0;
  - full capture copied frames, and every frame the producer (QEMU's filter,
    counted in the ring header) made was consumed by the engine or counted
    as dropped: producer frames == engine frames + dropped (two processes'
    counters must agree);
  - results.md holds the table row; overhead.png and timeseries-bonnie.png
    (if any) are PNG files.

usage: test_bench_smoke.py --build-dir BUILD
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True, type=Path)
    args = ap.parse_args()
    build = args.build_dir.resolve()
    missing = [v for v in ("DSVMI_QEMU_PREFIX", "DSVMI_GUEST_DIR", "DSVMI_CACHE_DIR") if not os.environ.get(v)]
    if missing:
        fail("missing environment: " + ", ".join(missing) + " (scripts/test.sh exports them)")
    out = build / "tests" / "integration-work" / "bench_smoke"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(build / "dsvmi"), "bench", "--tiny", "--workloads", "postmark", "--modes", "none,full",
           "--reps", "1", "--accel", "tcg", "--no-block-layer", "--out", str(out)]
    print("+ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1400)
    sys.stdout.write(p.stdout[-3000:])
    sys.stderr.write(p.stderr[-5000:])
    if p.returncode != 0:
        fail(f"dsvmi bench exited {p.returncode}")

    r = json.loads((out / "results.json").read_text())
    if r["modes"] != ["none", "full"] or r["workloads"] != ["postmark"]:
        fail(f"unexpected modes/workloads {r['modes']} {r['workloads']}")
    if r["machine"]["accel"] != "tcg":
        fail("accelerator not recorded as tcg")
    row = r["table"].get("postmark")
    if not row:
        fail("no postmark row")
    for mode in ("none", "full"):
        secs = row[mode]["seconds"]
        if len(secs) != 1 or not all(math.isfinite(s) and s > 0 for s in secs):
            fail(f"{mode}: bad times {secs}")
    ratio = row["full"]["ratio_median"]
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        fail(f"full/none ratio is not a finite positive number: {ratio}")
    if not row["none"]["bytes_written_median"] or row["none"]["bytes_written_median"] <= 0:
        fail("the guest reported no bytes written")
    if len(r["boots"]) != 2:
        fail(f"expected 2 boots, got {len(r['boots'])}")
    for b in r["boots"]:
        for phase in r["phases"]:
            if phase not in b["phases"]:
                fail(f"boot {b['mode']}: phase {phase} not timed")
    full = next(b for b in r["boots"] if b["mode"] == "full")
    produced = full["ring_final"].get("produced_frames")
    dropped = full["ring_final"].get("dropped_frames")
    consumed = full["consumer_stats"].get("frames")
    if not produced:
        fail(f"full capture produced no frames: {full['ring_final']}")
    if consumed is None or consumed + dropped != produced:
        fail(f"producer made {produced} frames, engine consumed {consumed}, dropped {dropped}")
    if not full.get("consumer_hwm_kib"):
        fail("no engine peak RSS recorded")
    md = (out / "results.md").read_text()
    if "| postmark |" not in md:
        fail("results.md lacks the postmark row")
    for png in ("overhead.png", "timeseries-bonnie.png"):
        f = out / png
        if png == "overhead.png" and not f.exists():
            fail("overhead.png missing")
        if f.exists() and f.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            fail(f"{png} is not a PNG")
    print(f"ok: postmark full/none = {ratio:.3f}, {produced} frames produced and consumed")


if __name__ == "__main__":
    main()

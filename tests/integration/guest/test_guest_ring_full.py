#!/usr/bin/env python3
"""A full ring never hurts the guest, and the loss is counted and recorded
(label: integration).

`dsvmi capture` creates the smallest ring (64 KiB) and is then paused
(SIGSTOP), so nobody drains it. The guest, whose disk is behind the filter
in pass-all mode, runs the file-system workload (several MB of writes: the
ring overflows at once), reports phase 1 done and waits on its control port.
The host then checks `dsvmi ring-stat` (frames dropped, a pending lost
range), resumes the capture, waits until ring-stat shows the ring drained,
and lets the guest write a few more files: the producer's next frame is
preceded by an in-band Lost record.
Oracles: the workload exits 0 with no kernel I/O error; e2fsck -fn is clean
and debugfs shows the workload's exact result (workload_fs_ops.check); the
trace holds a Lost frame; delivered + lost == produced (every sequence
number is accounted for); `dsvmi replay` refuses the trace (exit 1, "LOST")
unless --allow-lost.

usage: test_guest_ring_full.py --build-dir BUILD
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))
import guest  # noqa: E402
import workload_fs_ops  # noqa: E402

PHASE2 = """
echo DSVMI-PHASE1-DONE
read -r go < /dev/ttyS1
mkdir -p after
for i in 1 2 3 4 5 6 7 8; do echo "after $i" > after/f$i; done
sync
"""


def ring_stat(env, ring):
    """`dsvmi ring-stat --json` (docs/cli-json.md) as a dict."""
    r = guest.run([env.dsvmi(), "ring-stat", "--json", ring], check=False)
    assert r.returncode == 0, f"dsvmi ring-stat failed ({r.returncode}): {r.stdout}{r.stderr}"
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "guest_ring_full")

    original = guest.make_ext4(work / "original.img", 64, workload_fs_ops.INITIAL_TREE)
    disk = work / "disk.img"
    shutil.copyfile(original, disk)
    ring, trace = guest.shm_ring_path("ring_full"), work / "capture.trace"
    capture = guest.Capture(env, ring, trace, capacity="64K").start()
    capture.pause()
    chain = guest.DiskChain(disk, fmt="raw", dsvmi={"ring": str(ring)})
    workload = workload_fs_ops.script(trim=False) + PHASE2
    vm = guest.Guest(env, work, workload, chain, control=True)
    try:
        vm.start()
        vm.wait_for_console("DSVMI-PHASE1-DONE", 240)
        stat = ring_stat(env, ring)
        print(stat)
        dropped = stat["dropped_frames"]
        assert dropped > 0, "a paused 64 KiB ring must overflow under MBs of writes"
        assert stat["lost_consistent"] and stat["lost_pending_frames"] > 0, "ring-stat shows no pending lost range"
        capture.resume()
        # Wait (on state, not on time) until the consumer has drained the ring.
        last = {}
        for _ in range(1200):
            last = ring_stat(env, ring)
            if last["fill_bytes"] == 0:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the resumed capture never drained the ring:\n{last}")
        vm.send_control("go")
        vm.wait(timeout=240)
    finally:
        vm.kill()
        stats = capture.stop()
    print(f"capture: {stats}")

    clean, out = guest.e2fsck_clean(disk)
    assert clean, f"e2fsck -fn on the final disk:\n{out}"
    workload_fs_ops.check(disk)
    for i in range(1, 9):
        got = guest.run(["debugfs", "-R", f"cat /after/f{i}", disk]).stdout
        assert got == f"after {i}\n", f"/after/f{i}: {got!r}"

    # Drops after the producer's last enqueued frame can't be reported in
    # band yet: ring-stat shows them as the pending lost range.
    final = ring_stat(env, ring)
    print(final)
    assert final["lost_consistent"], f"ring-stat lost mirror: {final}"
    pending = final["lost_pending_frames"]
    assert stats["producer_dropped_frames"] >= dropped > 0, stats
    assert stats["lost_records"] >= 1, f"no Lost frame in the trace: {stats}"
    assert stats["lost_frames"] + pending == stats["producer_dropped_frames"], \
        f"in-band Lost frames + pending ({pending}) don't cover every drop: {stats}"
    delivered = stats["frames"] - stats["lost_records"]
    assert delivered + stats["lost_frames"] + pending == stats["producer_produced_frames"], \
        f"delivered + lost != produced: {stats}, pending {pending}"

    scratch = work / "scratch.img"
    shutil.copyfile(original, scratch)
    r = guest.run([env.dsvmi(), "replay", trace, scratch], check=False)
    print(r.stdout.strip(), r.stderr.strip(), sep="\n")
    assert r.returncode == 1 and "LOST" in r.stderr, "replay must refuse a lossy trace by default"
    r = guest.run([env.dsvmi(), "replay", "--allow-lost", trace, scratch], check=False)
    assert r.returncode == 0, f"replay --allow-lost: {r.stderr}"
    print("PASS guest_ring_full")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

#!/usr/bin/env python3
"""A live policy change in a running engine, with a real guest (label:
integration).

`dsvmi run --ring --gate --policy-file P --stats-interval 1` runs beside a
busybox guest that, in a loop, creates one file under /one and one under
/two, overwrites a block of the existing /two/existing in place, and syncs.
The policy starts as `glob = /one/**` (the crawl published that gate); a few
iterations in, P gains `glob = /two/**` and the engine gets SIGHUP. Checked
against what the guest says it did (its ITER / DSVMI-FILES lines), debugfs
and e2fsck:
  - the engine writes a policy record for generation 1 and, after the
    SIGHUP, generation 2 with both globs, ok;
  - no modify event for /two before that record; modify events for
    /two/existing (in-place writes the gate passes only once recomputed) and
    for new /two files after it; /one is modified throughout;
  - every file the guest created has its create event (none missed while
    the policy changed), and nothing else was created, renamed or deleted;
  - the engine's final tree is debugfs's, the events replayed onto the
    original give the final tree, /two/existing rebuilt from the events is
    the final file;
  - each event carries latency_us; stats records carry the latency
    histogram (printed: the event latency of this run).

usage: test_infer_live_policy.py --build-dir BUILD
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))
import guest  # noqa: E402
import infer_oracle as oracle  # noqa: E402

INITIAL_TREE = {
    "one/existing": b"o" * 16384,
    "two/existing": b"t" * 16384,
}

WORKLOAD = """
echo GUEST-READY
( read -r cmd < /dev/ttyS1; touch /tmp/stop ) &
i=0
while [ ! -f /tmp/stop ]; do
    yes "one $i" | head -c 8192 > one/a$i
    yes "two $i" | head -c 8192 > two/b$i
    yes "rw $i" | head -c 4096 | dd of=two/existing bs=4096 seek=1 conv=notrunc 2>/dev/null
    sync
    echo "ITER $i"
    i=$((i + 1))
done
sync
echo "DSVMI-FILES $i"
"""


def last_iter(console):
    m = re.findall(r"^ITER (\d+)", console, re.M)
    return int(m[-1]) if m else -1


def read_lines(path):
    try:
        return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    except json.JSONDecodeError:
        return []  # a line being written: read again later
    except FileNotFoundError:
        return []  # the engine has not opened its event file yet


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "infer_live_policy")
    original = guest.make_ext4(work / "original.img", 64, INITIAL_TREE)
    disk = work / "disk.img"
    shutil.copyfile(original, disk)
    index = work / "original.dsvx"
    ring = guest.shm_ring_path("infer-live-policy")
    gate = Path("/dev/shm") / f"dsvmi-test-live-policy-{os.getpid()}.gate"
    policy = work / "watch.policy"
    policy.write_text("# the engine re-reads this on SIGHUP\nmode = low-overhead\nglob = /one/**\n")
    events_path, state_path, log = work / "events.jsonl", work / "state.jsonl", work / "run.log"
    stats_path = work / "stats.json"
    try:
        guest.run([env.dsvmi(), "crawl", original, "--index", index, "--gate", gate, "--glob", "/one/**"])
        with open(state_path, "w") as out, open(log, "w") as err:
            engine = subprocess.Popen([env.dsvmi(), "run", "--ring", ring, "--index", index, "--disk", disk,
                                       "--gate", gate, "--policy-file", policy, "--stats-interval", "1",
                                       "--events", events_path, "--data", "--state", "--stats",
                                       "--stats-json", stats_path],
                                      stdout=out, stderr=err)
            deadline = time.monotonic() + 30
            while not any(r.get("engine") == "ready" for r in read_lines(events_path)):
                assert engine.poll() is None, f"dsvmi run exited: {log.read_text()}"
                assert time.monotonic() < deadline, "dsvmi run not ready"
                time.sleep(0.05)
            vm = guest.Guest(env, work, WORKLOAD, guest.DiskChain(disk, dsvmi={"ring": str(ring), "gate": str(gate)}),
                             control=True)
            try:
                vm.start()
                vm.wait_until(lambda c: last_iter(c) >= 4, "ITER 4", 300)
                # The switch: the file gains /two/**; the engine applies it live.
                policy.write_text("mode = low-overhead\nglob = /one/**\nglob = /two/**\n")
                switch_iter = last_iter(vm.console())
                engine.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 60
                while not any(r.get("engine") == "policy" and r.get("generation") == 2 for r in read_lines(events_path)):
                    assert engine.poll() is None, f"dsvmi run exited: {log.read_text()}"
                    assert time.monotonic() < deadline, "no policy record after SIGHUP"
                    time.sleep(0.05)
                vm.wait_until(lambda c: last_iter(c) >= switch_iter + 6, f"ITER {switch_iter + 6}", 300)
                vm.send_control("stop")
                console = vm.wait(timeout=300)
            finally:
                vm.kill()
                engine.send_signal(signal.SIGTERM)
                rc = engine.wait(timeout=120)
        assert rc == 0, f"dsvmi run exited {rc}: {log.read_text()[-2000:]}"
        print(guest.run([env.dsvmi(), "gate-stat", "--json", gate]).stdout.strip())
    finally:
        guest.remove_quietly(gate)

    final_stats = json.loads(stats_path.read_text())
    print("engine:", json.dumps(final_stats))
    n = int(re.search(r"DSVMI-FILES (\d+)", console).group(1))
    lines = read_lines(events_path)
    records = [(k, r) for k, r in enumerate(lines) if "engine" in r]
    events = [(k, e) for k, e in enumerate(lines) if "event" in e]
    assert all(("engine" in r) != ("event" in r) for r in lines), "a line is both a record and an event"

    # Policy records.
    pol = [(k, r) for k, r in records if r["engine"] == "policy"]
    assert len(pol) == 2, f"policy records: {pol}"
    (k1, p1), (k2, p2) = pol
    assert p1["generation"] == 1 and p1["ok"] and p1["globs"] == ["/one/**"] and p1["mode"] == "low-overhead", p1
    assert p2["generation"] == 2 and p2["ok"] and p2["error"] == "" and p2["globs"] == ["/one/**", "/two/**"], p2
    assert p2["gate_mode"] == "set" and p2["gate_grains"] > p1["gate_grains"], (p1, p2)
    assert p2["watched_files"] > p1["watched_files"], (p1, p2)
    print(f"policy: generation 1 {p1['globs']} {p1['gate_grains']} grains -> generation 2 {p2['globs']} "
          f"{p2['gate_grains']} grains, {p2['watched_files']} watched files (switch at guest ITER {switch_iter})")
    assert any(r["engine"] == "ready" and r["phase"] == "live" for _, r in records), "no ready/live record"
    stats = [r for _, r in records if r["engine"] == "stats"]
    assert stats, "no stats record"
    for r in stats:
        for key in ("frames", "events", "write_bytes", "lost_records", "ring_lag_bytes"):
            assert isinstance(r[key], int) and r[key] >= 0, r
        for h in ("latency_us", "latency_us_total"):
            assert set(r[h]) == {"p50", "p99", "max", "count"}, r
            assert r[h]["p50"] <= r[h]["p99"] <= r[h]["max"], r
    assert stats[-1]["events"] == len(events), (stats[-1], len(events))

    # Modify events vs the switch.
    mods = [(k, e["path"]) for k, e in events if e["event"] == "modify"]
    two_before = [p for k, p in mods if k < k2 and p.startswith("/two/")]
    assert not two_before, f"/two modified before /two/** was watched: {two_before[:3]}"
    two_after = {p for k, p in mods if k > k2 and p.startswith("/two/")}
    assert "/two/existing" in two_after, f"no in-place /two/existing modify after the switch: {sorted(two_after)[:5]}"
    assert any(re.fullmatch(r"/two/b\d+", p) for p in two_after), f"no new /two file modified: {sorted(two_after)}"
    assert any(p.startswith("/one/") for k, p in mods if k < k2), "no /one modify before the switch"
    assert any(p.startswith("/one/") for k, p in mods if k > k2), "no /one modify after the switch"
    print(f"modify: /two none before the policy record, {len(two_after)} /two paths after it")

    # Creates: exactly what the guest created, none missed around the switch.
    want = {f"/one/a{i}" for i in range(n)} | {f"/two/b{i}" for i in range(n)}
    created = [e["path"] for _, e in events if e["event"] == "create"]
    assert sorted(created) == sorted(want), \
        f"creates != guest's files: missing {sorted(want - set(created))[:5]}, extra {sorted(set(created) - want)[:5]}"
    other = [e for _, e in events if e["event"] not in ("create", "modify", "extend", "truncate", "attrib")]
    assert not other, f"events the guest did not cause: {other[:3]}"
    print(f"create: {len(created)} events == the guest's {2 * n} files")

    # Latency on every event.
    lat = [e["latency_us"] for _, e in events]
    assert all(isinstance(x, int) and x >= 0 for x in lat)
    total = final_stats["event_latency_us"]
    assert total["count"] == len(lat), f"--stats-json latency counts {total['count']} events, the stream {len(lat)}"
    assert total["max"] == max(lat), f"--stats-json latency max {total['max']} us != the events' {max(lat)} us"
    print(f"event latency (frame -> event, engine side): p50 {total['p50']} us, p99 {total['p99']} us, "
          f"max {total['max']} us over {len(lat)} events; last interval {stats[-1]['latency_us']}")

    # debugfs / e2fsck oracles.
    clean, out = guest.e2fsck_clean(disk)
    assert clean, f"e2fsck -fn:\n{out}"
    final = oracle.debugfs_tree(disk)
    got = oracle.state_tree(state_path.read_text())
    assert got == final, "engine tree != debugfs:\n" + oracle.diff_trees(got, final)
    replayed, err = oracle.apply_events(oracle.debugfs_tree(original), [e for _, e in events])
    assert err is None, err
    want_s = {p: oracle.strip(e) for p, e in final.items()}
    assert replayed == want_s, "events replayed != final:\n" + oracle.diff_trees(replayed, want_s)
    final_dir = oracle.rdump(disk, work / "rdump-final")
    ino = final["/two/existing"]["ino"]
    rebuilt = oracle.rebuild_contents({ino: INITIAL_TREE["two/existing"]}, [e for _, e in events])[ino]
    assert bytes(rebuilt) == (final_dir / "two/existing").read_bytes(), "/two/existing rebuilt != final"
    print(f"{len(final)} paths: engine tree == debugfs, events replay == final, /two/existing rebuilt == final")
    print("PASS infer_live_policy")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

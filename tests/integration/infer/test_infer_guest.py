#!/usr/bin/env python3
"""The inference fidelity tests (docs/inference.md) with a real guest kernel (label: integration).

A busybox guest (tests/guest) runs the workload below on an ext4 disk behind
the dsvmi filter, syncs and powers off. Then, for the engine's output:
  1. its final tree (paths, types, sizes, modes, uid/gid, mtimes, link
     targets, link counts / hard-link groups) equals debugfs's view of the
     final image;
  2. its events, applied in order to debugfs's view of the original image,
     give debugfs's view of the final image (no false positives/negatives);
  3. for watched files, the contents rebuilt from the original files plus
     the modify/truncate/extend events equal the final files (debugfs rdump).
Modes:
  full  pass-all capture into a trace (dsvmi capture), then `dsvmi run
        --trace` over it with the original image as the disk;
  low   low-overhead: a gate (metadata + data of /logs/**) built by
        `dsvmi crawl --gate`, `dsvmi run --ring --gate` live beside the guest
        with the live disk; also reports the fraction of written bytes QEMU
        dropped (gate-stat), which must be >= 95% on this data-heavy workload.

usage: test_infer_guest.py --build-dir BUILD --mode full|low
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))
import guest  # noqa: E402
import infer_oracle as oracle  # noqa: E402
import infer_run  # noqa: E402

LONG_TARGET = "/a/symlink/target/that/is/certainly/longer/than/sixty/bytes/so/it/gets/a/block"
WATCH = "/logs/**"

INITIAL_TREE = {
    "etc/motd": b"original motd\n",
    "old/keep": b"keep me\n",
    "old/overwrite-me": b"x" * 20000,
    "old/delete-me": b"y" * 9000,
    "logs/old.log": b"old log line\n" * 100,
}

# Each `sync` ends a batch the engine sees as a journal commit.
WORKLOAD = f"""
mkdir -p deep/a/b/c/d/e/f w
echo leaf > deep/a/b/c/d/e/f/leaf
i=0
while [ $i -lt 30 ]; do echo "file $i" > w/f$i; i=$((i + 1)); done
echo start > logs/app.log
yes dsvmi-log-line | head -c 300000 >> logs/app.log
echo appended >> w/f1
sync
mv w/f2 w/f2.renamed
mv w/f14 logs/moved-in.log
mv w/f3 deep/a/f3
echo victim > w/victim
sync
mv w/f4 w/victim
ln w/f5 deep/f5.hard
ln w/f6 w/f6.hard2
ln -s f7 w/short.sym
ln -s {LONG_TARGET} w/long.sym
chmod 600 w/f8
chown 1000:100 w/f9
chmod 4755 deep/a
rm w/f10
mkdir -p tmp/x/y
echo z > tmp/x/y/z
echo q > tmp/x/q
sync
rm -r tmp
rm old/delete-me
yes abc | head -c 50000 > w/shrink
sync
truncate -s 1000 w/shrink
echo grow > w/grow
sync
truncate -s 200000 w/grow
mv deep/a/b deep/moved
mkdir many
i=0
while [ $i -lt 2000 ]; do echo $i > many/entry-with-a-fairly-long-name-$i; i=$((i + 1)); done
sync
i=0
while [ $i -lt 60 ]; do dd if=/dev/urandom of=frag bs=4096 count=1 seek=$((i * 2)) conv=notrunc 2>/dev/null; i=$((i + 1)); done
sync
rm w/f11 w/f12 w/f13
sync
echo reuse1 > w/reuse1
echo reuse2 > w/reuse2
dd if=/dev/urandom of=logs/data.bin bs=65536 count=16 2>/dev/null
echo more >> logs/app.log
echo tail >> logs/moved-in.log
dd if=/dev/zero of=bulk.bin bs=1048576 count=48 2>/dev/null
dd if=/dev/zero of=old/overwrite-me bs=4096 count=2 conv=notrunc 2>/dev/null
sync
"""


def check(work, original, final, events_path, state_text, stats, watched):
    print("engine:", json.dumps(stats))
    want = oracle.debugfs_tree(final)
    got = oracle.state_tree(state_text)
    assert got == want, "1. engine tree != debugfs view of the final image:\n" + oracle.diff_trees(got, want)
    print(f"1. engine tree == debugfs view ({len(want)} paths)")

    events = oracle.load_events(events_path)
    initial = oracle.debugfs_tree(original)
    replayed, err = oracle.apply_events(initial, events)
    assert err is None, f"2. replaying the events failed: {err}"
    want_s = {p: oracle.strip(e) for p, e in want.items()}
    assert replayed == want_s, "2. events replayed on the original != final:\n" + \
        oracle.diff_trees(replayed, want_s)
    kinds = {e["event"] for e in events}
    for k in ("create", "mkdir", "symlink", "link", "delete", "rmdir", "rename", "attrib", "truncate",
              "extend", "modify"):
        assert k in kinds, f"no {k} event among {sorted(kinds)}"
    assert any(e["event"] == "rename" and e.get("replaced_ino") for e in events), "no rename over a name"
    assert "overflow" not in kinds, "frames were lost"
    assert stats["forced_ops"] == 0, f"name operations applied out of order: {stats}"
    print(f"2. {len(events)} events replayed onto the original == final; kinds {sorted(kinds)}")

    orig_dir = oracle.rdump(original, work / "rdump-original")
    final_dir = oracle.rdump(final, work / "rdump-final")
    init_contents = {}
    for p, e in initial.items():
        if e["type"] == "file":
            init_contents[e["ino"]] = (orig_dir / p.lstrip("/")).read_bytes()
    rebuilt = oracle.rebuild_contents(init_contents, events)
    checked = 0
    for p, e in want.items():
        if e["type"] != "file" or not watched(p):
            continue
        expect = (final_dir / p.lstrip("/")).read_bytes()
        b = bytes(rebuilt.get(e["ino"], b""))[:e["size"]]
        b += b"\0" * (e["size"] - len(b))
        assert b == expect, f"3. {p}: contents rebuilt from events differ from the final file " \
                            f"({len(b)} vs {len(expect)} bytes)"
        checked += 1
    assert checked > 0
    print(f"3. {checked} watched files: rebuilt contents == final contents")
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--mode", choices=["full", "low"], required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, f"infer_guest_{args.mode}")
    original = guest.make_ext4(work / "original.img", 128, INITIAL_TREE)
    disk = work / "disk.img"
    shutil.copyfile(original, disk)
    if args.mode == "full":
        r = infer_run.run_full(env, work, WORKLOAD, original, disk, f"infer-{args.mode}")
        check(work, original, disk, r.events, r.state, r.stats, lambda p: True)
    else:
        r = infer_run.run_low(env, work, WORKLOAD, original, disk, f"infer-{args.mode}", WATCH)
        print(r.gate_stat)
        check(work, original, disk, r.events, r.state, r.stats, lambda p: p.startswith("/logs/"))
        passed, dropped = r.gate_stat["bytes_passed"], r.gate_stat["bytes_dropped"]
        frac = dropped / max(1, passed + dropped)
        print(f"low-overhead: {dropped} of {passed + dropped} written bytes dropped ({frac:.1%})")
        assert frac >= 0.95, f"only {frac:.1%} of written bytes dropped"
    print(f"PASS infer_guest_{args.mode}")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

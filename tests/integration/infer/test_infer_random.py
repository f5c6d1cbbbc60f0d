#!/usr/bin/env python3
"""Randomized differential test of the event ordering with a real guest
(label: integration).

Seeded random workloads (random_workload.py: one directory per seed, several
seeds per guest boot) run in the test guest on ext4 remounted with
`commit=60` and periodic writeback off, so many commands share one journal
commit (freed inode numbers come straight back inside a commit, names swap,
trees move and vanish). The first boot also runs the reported case
(`issue/`: `rm -r` of a tree, then a new directory and a file in it). For
each boot:
  a. the engine's final tree (--state) == debugfs's walk of the final image;
  b. the events, applied in order by the reference model (infer_oracle.py,
     which refuses an event that does not apply to the tree at that moment)
     to debugfs's walk of the original image, == that walk of the final one;
  c. no name operation was forced out of order (forced_ops=0);
and, to check the generator itself, the paths and types under each seed's
directory == what its model of the commands predicts.
Modes full (capture + trace replay) and low (live ring + gate), as in
test_infer_guest.py.

usage: test_infer_random.py --build-dir BUILD --mode full|low
           [--seeds 1-8] [--per-boot 4] [--ops 80]
DSVMI_INFER_SEEDS (e.g. 1-400 or 3,17,42) overrides --seeds; see
docs/testing.md for long runs.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))
import guest  # noqa: E402
import infer_oracle as oracle  # noqa: E402
import infer_run  # noqa: E402
import random_workload  # noqa: E402

WATCH = "/*/a/**"

# The reported case: the numbers of /issue/a/b/c and of its subdirectory d
# are free again before the commit that also creates /issue/reuse/r.
ISSUE = """mkdir -p issue/a/b/c/d/e/f/g
echo hard > issue/a/hard1
ln issue/a/hard1 issue/a/b/c/hard2
sync
rm -r issue/a/b/c
mkdir issue/reuse
echo r > issue/reuse/r
sync"""
ISSUE_TREE = {"/issue": "dir", "/issue/a": "dir", "/issue/a/b": "dir", "/issue/a/hard1": "file",
              "/issue/reuse": "dir", "/issue/reuse/r": "file"}
# The same on a tree the engine knows only from the crawl (mkfs -d made it;
# the engine never decoded those inodes): their generations come from the
# index, so a reused number is still two files, never a rename.
CRAWLED_INITIAL = {"crawled/a/b/c/d/e/f/g": None, "crawled/a/hard1": b"hard\n"}
CRAWLED = """rm -r crawled/a/b/c
mkdir crawled/reuse
echo r > crawled/reuse/r
sync"""
CRAWLED_TREE = {"/crawled": "dir", "/crawled/a": "dir", "/crawled/a/b": "dir", "/crawled/a/hard1": "file",
                "/crawled/reuse": "dir", "/crawled/reuse/r": "file"}


def parse_seeds(spec):
    seeds = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            seeds += range(int(a), int(b) + 1)
        elif part:
            seeds.append(int(part))
    return seeds


def check_boot(run, original, final, expected, issue):
    """Returns a list of failures (empty: all checks hold)."""
    failures = []
    stats = run.stats
    want = oracle.debugfs_tree(final)
    got = oracle.state_tree(run.state)
    if got != want:
        failures.append("a. engine tree != debugfs walk of the final image:\n" + oracle.diff_trees(got, want))
    events = oracle.load_events(run.events)
    replayed, err = oracle.apply_events(oracle.debugfs_tree(original), events)
    want_s = {p: oracle.strip(e) for p, e in want.items()}
    if err is not None:
        failures.append(f"b. replaying the events failed: {err}")
    elif replayed != want_s:
        failures.append("b. events replayed on the original != final:\n" + oracle.diff_trees(replayed, want_s))
    if stats["forced_ops"] != 0:
        failures.append(f"c. name operations forced out of order: forced_ops={stats['forced_ops']}")
    if "overflow" in {e["event"] for e in events}:
        failures.append("frames were lost (overflow event)")
    for top, tree in expected.items():
        walked = {p: e["type"] for p, e in want.items() if p == top or p.startswith(top + "/")}
        if walked != tree:
            failures.append(f"generator: {top} in the image differs from the model:\n" +
                            oracle.diff_trees(walked, tree))
    print(f"  {len(want)} paths, {len(events)} events, "
          f"{sum(1 for e in events if '/.dsvmi-tmp-' in e.get('path', ''))} temporary names, "
          f"forced_ops={stats['forced_ops']}")
    if issue:
        c = [e["ino"] for e in events if e["event"] == "rmdir" and e["path"] == "/issue/a/b/c"]
        r = [e["ino"] for e in events if e["event"] == "mkdir" and e["path"] == "/issue/reuse"]
        print(f"  issue case: /issue/a/b/c was inode {c}, /issue/reuse is {r}"
              f"{' (number reused in one commit)' if c and c == r else ''}")
        if not any(e["event"] == "create" and e["path"] == "/issue/reuse/r" for e in events):
            failures.append("issue case: no create of /issue/reuse/r")
        old_c = oracle.debugfs_tree(original).get("/crawled/a/b/c", {}).get("ino")
        r = [e["ino"] for e in events if e["event"] == "mkdir" and e["path"] == "/crawled/reuse"]
        print(f"  crawled case: /crawled/a/b/c was inode {old_c}, /crawled/reuse is {r}"
              f"{' (number reused in one commit)' if old_c and r and r[0] == old_c else ''}")
        for e in events:
            if e["event"] == "rename" and e.get("old_path", "").startswith("/crawled/a/b/c"):
                failures.append(f"crawled case: a removed file reported as renamed: {e['old_path']} -> {e['path']}")
        if not any(e["event"] == "rmdir" and e["path"] == "/crawled/a/b/c" for e in events):
            failures.append("crawled case: no rmdir of /crawled/a/b/c")
        if not any(e["event"] == "mkdir" and e["path"] == "/crawled/reuse" for e in events):
            failures.append("crawled case: no mkdir of /crawled/reuse")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--mode", choices=["full", "low"], required=True)
    ap.add_argument("--seeds", default="1-8")
    ap.add_argument("--per-boot", type=int, default=4)
    ap.add_argument("--ops", type=int, default=80)
    args = ap.parse_args()
    seeds = parse_seeds(os.environ.get("DSVMI_INFER_SEEDS") or args.seeds)
    env = guest.Env.from_environment(args.build_dir)
    failed = {}
    boots = [seeds[i:i + args.per_boot] for i in range(0, len(seeds), args.per_boot)]
    for k, group in enumerate(boots):
        name = f"infer_random_{args.mode}-{group[0]}"
        work = guest.workdir_for(args.build_dir, name)
        workloads = [random_workload.Workload(s, f"s{s}", args.ops) for s in group]
        initial = {}
        for w in workloads:
            initial.update(w.initial)
        expected = {"/" + w.top: w.tree() for w in workloads}
        issue = k == 0
        if issue:
            expected["/issue"] = ISSUE_TREE
            expected["/crawled"] = CRAWLED_TREE
            initial.update(CRAWLED_INITIAL)
        script = random_workload.workload_text(workloads, ISSUE + "\n" + CRAWLED if issue else "")
        (work / "workload.sh").write_text(script)
        original = guest.make_ext4(work / "original.img", 64, initial)
        disk = work / "disk.img"
        shutil.copyfile(original, disk)
        print(f"boot {k + 1}/{len(boots)}: seeds {group} ({len(script.splitlines())} commands)", flush=True)
        if args.mode == "full":
            run = infer_run.run_full(env, work, script, original, disk, name)
        else:
            run = infer_run.run_low(env, work, script, original, disk, name, WATCH)
        failures = check_boot(run, original, disk, expected, issue)
        for f in failures:
            print(f"  FAIL seeds {group}: {f}", flush=True)
        if failures:
            failed[tuple(group)] = failures
        elif not os.environ.get("DSVMI_KEEP_WORK"):
            shutil.rmtree(work)
    print(f"{len(seeds)} seeds in {len(boots)} boots ({args.mode}): "
          f"{len(failed)} boots with mismatches{': ' + str(sorted(failed)) if failed else ''}")
    assert not failed, f"mismatches in seed groups {sorted(failed)} (work dirs kept under tests/integration-work)"
    print(f"PASS infer_random_{args.mode}")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

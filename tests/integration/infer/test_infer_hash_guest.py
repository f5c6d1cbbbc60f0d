#!/usr/bin/env python3
"""Content hashes in the event stream (docs/hashes.md) with a real guest
kernel (label: integration).

A busybox guest changes files under /h (hashed: `dsvmi run --hash '/h/**'`,
low-overhead mode, live ring and gate) in the ways that matter to an
incremental hasher: appends, writes in the middle of a large file, a
truncation, a new file, a rename over an existing name, a file moved in from
an unhashed directory, a delete, a file over --hash-max. Then:
  1. for every file under /h in the final image, the last hash event of its
     inode names its final path and carries the SHA-256 that sha256sum
     prints for debugfs's dump of it, and the RFC 6962 Merkle root this test
     computes over the same bytes (64 KiB leaves) — or, over the limit,
     hash_skipped and no digest;
  2. no file outside /h gets a hash event;
  3. the incremental updates read what changed, not the file: the last
     append to /h/log reads the new bytes and the Merkle leaf they extend,
     the second middle write of /h/mid.bin reads from its checkpoint (1 MiB
     spacing) to the end;
  5. a file over the limit is reported once while it stays over it;
  6. diffs: each hash event of /h/sshd_config after its first carries a
     unified diff; `patch` applied to the version before turns it into a
     file whose sha256sum is that event's, ending at the final file; the
     second middle write of /h/mid.bin reports the byte range it wrote.
  7. every hash event (not only the last per file) equals the SHA-256 of the
     content the stream implies at that point: the original files (debugfs
     dump) with the create/modify/truncate/extend events before it applied;
  4. the other events still replay onto debugfs's original tree to its
     final tree (hash events change no tree).

usage: test_infer_hash_guest.py --build-dir BUILD [--baseline]
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))
import guest  # noqa: E402
import infer_oracle as oracle  # noqa: E402
import infer_run  # noqa: E402

HASHED = "/h/**"
WATCH = "/logs/**"
HASH_MAX = 8 << 20
LEAF = 64 << 10
MIB = 1 << 20

INITIAL_TREE = {
    "h/mid.bin": os.urandom(4 * MIB),
    "h/big.bin": os.urandom(2 * MIB),
    "h/conf": b"PermitRootLogin no\n" * 10,
    "h/gone": b"to be deleted\n",
    "h/log": b"first line\n",
    "h/sshd_config": b"# sshd\nPort 22\nPermitRootLogin no\nUsePAM yes\n",
    "other/plain": b"not hashed\n",
    "logs/a.log": b"log\n",
}

# Each `sync` ends a journal commit: a consistency point the hashes settle at.
# The engine reads unchanged parts of a file from the live disk, which may be
# ahead of the ring (docs/hashes.md, "What the hash is of"): `sleep 1` before
# a second change of the same file lets the engine settle the first one alone,
# so the checks below see one hash event per change.
WORKLOAD = """
echo 'Port 2222' >> h/sshd_config
sync
sleep 1
sed 's/PermitRootLogin no/PermitRootLogin yes/' h/sshd_config > h/tmp.cfg
cat h/tmp.cfg > h/sshd_config
rm h/tmp.cfg
sync
yes dsvmi-appended-line | head -c 300000 >> h/log
sync
sleep 1
echo one-more-line >> h/log
sync
dd if=/dev/urandom of=h/mid.bin bs=4096 count=2 seek=25 conv=notrunc 2>/dev/null
sync
sleep 1
dd if=/dev/urandom of=h/mid.bin bs=4096 count=2 seek=900 conv=notrunc 2>/dev/null
sync
truncate -s 5000 h/big.bin
sync
dd if=/dev/urandom of=h/new.bin bs=65536 count=8 2>/dev/null
sync
echo 'PermitRootLogin yes' > h/conf.tmp
sync
mv h/conf.tmp h/conf
sync
echo moved-in > other/m
sync
mv other/m h/m
sync
rm h/gone
dd if=/dev/zero of=h/over.bin bs=1048576 count=10 2>/dev/null
echo plain-change >> other/plain
echo log >> logs/a.log
sync
"""


def merkle_root(data):
    """RFC 6962 Merkle Tree Hash over LEAF-byte leaves (independent of the
    engine's code: the definition, recursively)."""
    leaves = [hashlib.sha256(b"\0" + data[i:i + LEAF]).digest() for i in range(0, len(data), LEAF)]

    def mth(h):
        if not h:
            return hashlib.sha256(b"").digest()
        if len(h) == 1:
            return h[0]
        k = 1
        while k * 2 < len(h):
            k *= 2
        return hashlib.sha256(b"\1" + mth(h[:k]) + mth(h[k:])).digest()

    return mth(leaves).hex()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--baseline", action="store_true",
                    help="also run the workload without --hash and print both event latency "
                         "histograms (the measurement in docs/hashes.md; nothing asserted)")
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "infer_hash_guest")
    original = guest.make_ext4(work / "original.img", 128, INITIAL_TREE)
    disk = work / "disk.img"
    shutil.copyfile(original, disk)
    r = infer_run.run_low(env, work, WORKLOAD, original, disk, "infer-hash", WATCH, hash_globs=[HASHED],
                          run_args=["--hash-max", str(HASH_MAX)])
    if args.baseline:
        base = work / "baseline"
        base.mkdir(exist_ok=True)
        bdisk = base / "disk.img"
        shutil.copyfile(original, bdisk)
        b = infer_run.run_low(env, base, WORKLOAD, original, bdisk, "infer-hash-base", WATCH,
                              run_args=["--policy", "glob:" + HASHED])
        print(f"latency: with hashes {r.stats['event_latency_us']} ({r.stats['events']} events), "
              f"without {b.stats['event_latency_us']} ({b.stats['events']} events)")
    print("engine:", json.dumps(r.stats))
    events = oracle.load_events(r.events)
    hashes = [e for e in events if e["event"] == "hash"]
    assert hashes, "no hash events"

    # 1. The last hash event of each final file is its content.
    final = oracle.debugfs_tree(disk)
    dump = oracle.rdump(disk, work / "rdump-final")
    last = {}
    for e in hashes:
        last[e["ino"]] = e
    checked = 0
    for p, f in sorted(final.items()):
        if f["type"] != "file" or not p.startswith("/h/"):
            continue
        e = last.get(f["ino"])
        assert e is not None, f"1. {p}: no hash event"
        assert e["path"] == p, f"1. {p}: the last hash event names {e['path']}"
        assert e["size"] == f["size"], f"1. {p}: hash event size {e['size']}, debugfs {f['size']}"
        if f["size"] > HASH_MAX:
            assert e.get("hash_skipped") and "sha256" not in e, f"1. {p}: over the limit but {e}"
            print(f"1. {p}: {f['size']} bytes, skipped: {e['hash_skipped']}")
            continue
        content = (dump / p.lstrip("/")).read_bytes()
        want = oracle.sha256sum(dump / p.lstrip("/"))
        assert e.get("sha256") == want, f"1. {p}: engine sha256 {e.get('sha256')} != sha256sum {want}"
        assert e.get("merkle_root") == merkle_root(content), f"1. {p}: Merkle root differs"
        checked += 1
    assert checked >= 6, f"only {checked} hashed files checked"
    print(f"1. {checked} files under /h: last hash == sha256sum of debugfs's dump, Merkle roots equal")

    # 2. Only hashed paths.
    stray = [e for e in hashes if not e["path"].startswith("/h/")]
    assert not stray, f"2. hash events outside /h: {stray[:3]}"
    print(f"2. {len(hashes)} hash events, all under /h")

    # 3. Incremental: what changed is read, not the file.
    log_ino, mid_ino = final["/h/log"]["ino"], final["/h/mid.bin"]["ino"]
    log_ev = [e for e in hashes if e["ino"] == log_ino]
    mid_ev = [e for e in hashes if e["ino"] == mid_ino]
    assert len(log_ev) >= 2 and len(mid_ev) >= 2, f"3. too few updates: log {log_ev}, mid {mid_ev}"
    # The last append (14 bytes) re-reads at most the Merkle leaf it ends in.
    assert log_ev[-1]["hash_bytes_read"] <= LEAF + 14, \
        f"3. the last append read {log_ev[-1]['hash_bytes_read']} bytes"
    # The second middle write (at 3.5 MiB) resumes at the 3 MiB checkpoint.
    assert mid_ev[-1]["hash_bytes_read"] <= 1 * MIB + LEAF, \
        f"3. a middle write read {mid_ev[-1]['hash_bytes_read']} of {final['/h/mid.bin']['size']} bytes"
    print(f"3. last append read {log_ev[-1]['hash_bytes_read']} bytes of {final['/h/log']['size']}; "
          f"middle write read {mid_ev[-1]['hash_bytes_read']} of {final['/h/mid.bin']['size']}; "
          f"engine total hash_bytes_read {r.stats['hash_bytes_read']}")

    # 5. Skipped once per state.
    over = [e for e in hashes if e["path"] == "/h/over.bin"]
    assert len(over) == 1, f"5. /h/over.bin reported {len(over)} times: {over}"

    # 6. Diffs, checked with patch(1) and sha256sum.
    cfg = [e for e in hashes if e["path"] == "/h/sshd_config"]
    assert len(cfg) >= 2, f"6. too few sshd_config hash events: {cfg}"
    start = INITIAL_TREE["h/sshd_config"]
    versions = [start, start + b"Port 2222\n"]
    cur = next((v for v in versions if hashlib.sha256(v).hexdigest() == cfg[0]["sha256"]), None)
    assert cur is not None, f"6. the first sshd_config hash is of neither expected version: {cfg[0]}"
    pdir = work / "patch"
    pdir.mkdir(exist_ok=True)
    for e in cfg[1:]:
        assert e.get("diff"), f"6. a text change without a diff: {e}"
        (pdir / "f").write_bytes(cur)
        (pdir / "p.diff").write_text(e["diff"])
        subprocess.run(["patch", "-s", str(pdir / "f"), str(pdir / "p.diff")], check=True)
        cur = (pdir / "f").read_bytes()
        assert oracle.sha256sum(pdir / "f") == e["sha256"], f"6. patched version != the event's sha256: {e['diff']}"
    assert cur == (dump / "h/sshd_config").read_bytes(), "6. the diffs do not end at the final file"
    mid_ranges = mid_ev[-1].get("changed_ranges", [])
    assert any(o <= 900 * 4096 and o + n >= 902 * 4096 for o, n in mid_ranges), \
        f"6. /h/mid.bin's last hash event misses the written range: {mid_ranges}"
    print(f"6. {len(cfg) - 1} sshd_config diffs applied with patch == each event's sha256 and the final file; "
          f"mid.bin ranges {mid_ranges}")

    # 7. Every intermediate hash: the content the event stream implies at that
    # point (original files from debugfs's dump of the original image, plus
    # the create/modify/truncate/extend events before the hash event) has
    # that digest.
    orig_dump = oracle.rdump(original, work / "rdump-original")
    initial_tree = oracle.debugfs_tree(original)
    contents = {f["ino"]: (orig_dump / p.lstrip("/")).read_bytes()
                for p, f in initial_tree.items() if f["type"] == "file"}
    intermediate = 0
    for i, e in enumerate(events):
        if e["event"] != "hash" or "sha256" not in e:
            continue
        b = bytes(oracle.rebuild_contents(contents, events[:i]).get(e["ino"], b""))[:e["size"]]
        b += b"\0" * (e["size"] - len(b))
        assert hashlib.sha256(b).hexdigest() == e["sha256"], \
            f"7. hash event {e['seq']} ({e['path']}, {e['size']} bytes) != the content its stream implies"
        intermediate += 1
    print(f"7. all {intermediate} hash events == sha256 of the content rebuilt from the events before them")

    # 4. The tree contract is unchanged by hash events.
    initial = oracle.debugfs_tree(original)
    replayed, err = oracle.apply_events(initial, events)
    assert err is None, f"4. replaying the events failed: {err}"
    want_s = {p: oracle.strip(e) for p, e in final.items()}
    assert replayed == want_s, "4. events replayed on the original != final:\n" + oracle.diff_trees(replayed, want_s)
    assert r.stats["hash_events"] == sum(1 for e in hashes if "sha256" in e)
    print("4. events replayed onto the original == final; 5. over-limit file reported once")
    print("PASS infer_hash_guest")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

#!/usr/bin/env python3
"""Fidelity of capture + replay with a real guest (label: integration).

The guest's ext4 disk sits behind the dsvmi filter in pass-all mode (raw: a
pass-all gate file; qcow2: no gate, the filter's pass-all default) while `dsvmi capture` drains the ring; the guest runs the file-system
workload (workload_fs_ops.py), syncs and powers off. Then:
  * replaying the trace onto a copy of the ORIGINAL image gives exactly the
    final disk: sha256 equal (raw), `qemu-img compare` identical (qcow2) and
    sha256 equal after converting the final qcow2 to raw;
  * `e2fsck -fn` is clean on both images;
  * debugfs shows every file of the workload with its exact content, link
    count, symlink target (the oracle in workload_fs_ops.check);
  * the capture lost nothing, and the trace is not trivially small;
  * `dsvmi crawl` of the guest-written final disk lists every directory as
    debugfs does.
The raw variant also runs fstrim, so Discard frames are replayed (as holes).

usage: test_guest_fidelity.py --build-dir BUILD --format raw|qcow2
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))
import crawl_oracle  # noqa: E402
import guest  # noqa: E402
import workload_fs_ops  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--format", choices=["raw", "qcow2"], required=True)
    ap.add_argument("--trim", choices=["yes", "no"], default=None,
                    help="run fstrim in the guest (default: yes for raw, no for qcow2)")
    args = ap.parse_args()
    trim = (args.trim or ("yes" if args.format == "raw" else "no")) == "yes"
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, f"guest_fidelity_{args.format}")

    original = guest.make_ext4(work / "original.img", 64, workload_fs_ops.INITIAL_TREE)
    if args.format == "raw":
        disk = work / "disk.img"
        shutil.copyfile(original, disk)
    else:
        disk = work / "disk.qcow2"
        guest.run([env.tool("qemu-img"), "convert", "-f", "raw", "-O", "qcow2", original, disk],
                  env=env.process_env())

    ring, trace = guest.shm_ring_path(f"fidelity-{args.format}"), work / "capture.trace"
    capture = guest.Capture(env, ring, trace, capacity="64M").start()
    filter_opts = {"ring": str(ring)}
    if args.format == "raw":
        # Pass-all through a real gate file (the reader runs on every write);
        # the qcow2 variant omits the gate, which the filter treats as pass-all.
        gate = guest.shm_path(f"fidelity-{args.format}", "gate")
        guest.run([env.dsvmi(), "gate-create", gate, "--disk-size", "64M", "--mode", "pass-all"])
        filter_opts["gate"] = str(gate)
    chain = guest.DiskChain(disk, fmt=args.format, dsvmi=filter_opts)
    vm = guest.Guest(env, work, workload_fs_ops.script(trim=trim), chain)
    try:
        vm.start()
        vm.wait(timeout=300)
    finally:
        vm.kill()
        stats = capture.stop()
    print(f"capture: {stats}")
    assert stats["lost_records"] == 0 and stats["producer_dropped_frames"] == 0, \
        f"the capture lost frames: {stats}"
    assert stats["invalid_records"] == 0, f"the ring delivered invalid records: {stats}"

    replayed = work / "replayed.img"
    shutil.copyfile(original, replayed)
    r = guest.run([env.dsvmi(), "replay", "--json", trace, replayed])
    print(r.stdout.strip())
    counts = json.loads(r.stdout)  # the replay summary record (docs/cli-json.md)
    assert counts["replay"] == "summary" and counts["lossless"], counts
    # The workload writes > 3 MB of file data; a trace without it captured nothing real.
    assert counts["writes"] > 20 and counts["write_bytes"] > 3_000_000, f"trace too small: {counts}"
    if trim:
        assert counts["discards"] > 0, "fstrim produced no Discard frames"

    if args.format == "raw":
        final_raw = disk
    else:
        cmp = guest.run([env.tool("qemu-img"), "compare", "-f", "raw", "-F", "qcow2", replayed, disk],
                        check=False, env=env.process_env())
        assert cmp.returncode == 0, f"qemu-img compare: replayed != final qcow2:\n{cmp.stdout}{cmp.stderr}"
        final_raw = work / "final.img"
        guest.run([env.tool("qemu-img"), "convert", "-f", "qcow2", "-O", "raw", disk, final_raw],
                  env=env.process_env())
    h_final, h_replayed = guest.sha256_file(final_raw), guest.sha256_file(replayed)
    h_original = guest.sha256_file(original)
    print(f"sha256 original {h_original}\nsha256 final    {h_final}\nsha256 replayed {h_replayed}")
    assert h_final != h_original, "the guest changed nothing?"
    assert h_final == h_replayed, "replayed image differs from the final disk"

    for name, img in (("final", final_raw), ("replayed", replayed)):
        clean, out = guest.e2fsck_clean(img)
        assert clean, f"e2fsck -fn on the {name} image:\n{out}"
    workload_fs_ops.check(final_raw)
    workload_fs_ops.check(replayed)
    # The crawler on a disk a real guest kernel wrote (not mkfs): every
    # directory as debugfs lists it.
    index = work / "final.dsvx"
    guest.run([env.dsvmi(), "crawl", final_raw, "--index", index])
    dirs, n = crawl_oracle.compare_crawl(env.dsvmi(), index, final_raw)
    print(f"crawl of the guest-written disk: {dirs} directories, {n} entries equal to debugfs")
    print(f"PASS guest_fidelity_{args.format}")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

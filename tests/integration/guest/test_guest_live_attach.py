#!/usr/bin/env python3
"""Live attach and detach of the dsvmi filter under a running guest (label:
integration).

The guest boots with its ext4 disk WITHOUT the filter and writes files in a
loop (sync every few files) until the host tells it to stop over a second
serial port. While it writes, the host:
  1. attaches: blockdev-add the dsvmi filter above the disk's format node,
     qom-set the virtio-blk device's drive to it (docs/testing.md);
  2. lets the guest write through the filter, with `dsvmi capture` draining;
  3. SIGKILLs the capture (the engine dies) and lets the guest keep writing
     into a ring nobody drains;
  4. detaches: qom-set the drive back to the format node, blockdev-del the
     filter; the guest keeps writing, then is told to stop.
Oracles: the workload exits 0 and the guest kernel logs no I/O error; after
dropping its page cache the guest re-reads every file and compares md5s with
what it wrote; on the host e2fsck -fn is clean and debugfs shows every file
with exactly the bytes the workload wrote; the killed capture's trace holds
Write frames (the filter really was in the path) and reads back without
corruption up to at most one truncated record (SIGKILL mid-append).

usage: test_guest_live_attach.py --build-dir BUILD
"""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
import guest  # noqa: E402

FILE_BLOCKS = 16  # file i holds 4 KiB * (1 + i % FILE_BLOCKS) bytes of "live i\n"


def file_bytes(i):
    line = f"live {i}\n".encode()
    size = 4096 * (1 + i % FILE_BLOCKS)
    return (line * (size // len(line) + 1))[:size]


WORKLOAD = f"""
mkdir -p live
rm -f /tmp/stop
( read -r cmd < /dev/ttyS1; touch /tmp/stop ) &
i=0
while [ ! -f /tmp/stop ]; do
    yes "live $i" | head -c $((4096 * (1 + i % {FILE_BLOCKS}))) > live/f$i
    if [ $((i % 4)) = 3 ]; then sync; fi
    echo "ITER $i"
    i=$((i + 1))
done
sync
echo 3 > /proc/sys/vm/drop_caches
j=0
while [ $j -lt $i ]; do
    want=$(yes "live $j" | head -c $((4096 * (1 + j % {FILE_BLOCKS}))) | md5sum)
    got=$(md5sum < live/f$j)
    if [ "$want" != "$got" ]; then echo "DSVMI-MISMATCH live/f$j"; exit 1; fi
    j=$((j + 1))
done
echo "DSVMI-LIVE-FILES $i"
"""


def last_iter(console):
    m = re.findall(r"^ITER (\d+)", console, re.M)
    return int(m[-1]) if m else -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "guest_live_attach")

    disk = guest.make_ext4(work / "disk.img", 64, {"hello": b"hi\n"})
    ring, trace = guest.shm_ring_path("live_attach"), work / "capture.trace"
    # 256 KiB: the writes after the kill overflow it, so detach also happens
    # with a full ring whose consumer is gone.
    capture = guest.Capture(env, ring, trace, capacity="256K").start()
    chain = guest.DiskChain(disk, fmt="raw")  # no filter at boot
    vm = guest.Guest(env, work, WORKLOAD, chain, control=True)
    dev = f"/machine/peripheral/{guest.Guest.DEVICE_ID}"

    def wait_iters(n, what):
        start = last_iter(vm.console())
        vm.wait_until(lambda c: last_iter(c) >= start + n, f"{n} more files ({what})", 240)
        return last_iter(vm.console())

    try:
        vm.start()
        q = vm.qmp()
        wait_iters(5, "before attach")
        q.execute("blockdev-add", chain.filter_opts(ring=str(ring)))
        q.execute("qom-set", path=dev, property="drive", value=chain.filter_node)
        attached_at = last_iter(vm.console())
        print(f"attached at ITER {attached_at}")
        wait_iters(20, "attached, capture draining")
        capture.kill()
        killed_at = last_iter(vm.console())
        print(f"capture killed at ITER {killed_at}")
        wait_iters(20, "attached, nobody draining")
        q.execute("qom-set", path=dev, property="drive", value=chain.fmt_node)
        q.execute("blockdev-del", **{"node-name": chain.filter_node})
        detached_at = last_iter(vm.console())
        print(f"detached at ITER {detached_at}")
        blk = q.execute("query-block")
        roots = [b.get("inserted", {}).get("node-name") for b in blk]
        assert chain.filter_node not in roots, f"filter still in the graph: {roots}"
        wait_iters(8, "after detach")
        vm.send_control("stop")
        console = vm.wait(timeout=300)
    finally:
        vm.kill()
        capture.kill()

    m = re.search(r"DSVMI-LIVE-FILES (\d+)", console)
    assert m, "the guest did not verify its files"
    n = int(m.group(1))
    print(f"guest wrote and re-read {n} files")
    assert n > detached_at, "the loop ended before the detach"

    clean, out = guest.e2fsck_clean(disk)
    assert clean, f"e2fsck -fn:\n{out}"
    for i in range(n):
        got = debugfs_cat(disk, f"/live/f{i}")
        assert got == file_bytes(i), f"/live/f{i}: {len(got)} bytes, not what the guest wrote"

    # The trace of the killed capture: Write frames while attached; at most
    # its last record cut short.
    scratch = work / "scratch.img"
    shutil.copyfile(disk, scratch)
    r = guest.run([env.dsvmi(), "replay", "--allow-lost", "--json", trace, scratch], check=False)
    print(r.stdout.strip(), r.stderr.strip(), sep="\n")
    writes = json.loads(r.stdout)["writes"]  # the replay summary record (docs/cli-json.md)
    assert writes > 0, "no Write frame captured while the filter was attached"
    if r.returncode != 0:
        assert "truncated" in r.stderr and "CRC" not in r.stderr, f"trace damaged: {r.stderr}"
    print("PASS guest_live_attach")


def debugfs_cat(image, path):
    import subprocess
    r = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True)
    assert b"not found" not in r.stderr, f"{path} missing: {r.stderr!r}"
    return r.stdout


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

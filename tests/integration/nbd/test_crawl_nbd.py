#!/usr/bin/env python3
"""`dsvmi crawl nbd+unix://...` reads any image QEMU can open: a GPT-partitioned
ext4 disk is converted to qcow2 and exported read-only by qemu-nbd; the index
crawled through the export lists every directory exactly as debugfs lists the
raw disk's file system (names, inode numbers, modes, uid/gid, sizes).

usage: test_crawl_nbd.py --build-dir BUILD   (needs DSVMI_QEMU_PREFIX)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import crawl_oracle  # noqa: E402


def run(argv, env=None, **kw):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, **kw)
    if p.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(map(str, argv))} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    prefix = os.environ.get("DSVMI_QEMU_PREFIX")
    if not prefix:
        raise SystemExit("FAIL: DSVMI_QEMU_PREFIX is not set (scripts/test.sh exports it; "
                         "or run qemu-patches/build.sh --print-prefix BUILD)")
    build = Path(args.build_dir).resolve()
    dsvmi = build / "dsvmi"
    env = dict(os.environ, LD_LIBRARY_PATH=str(build / "lib"))
    with tempfile.TemporaryDirectory(prefix="dsvmi-nbd-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "tree"
        for i in range(40):
            p = tree / f"d{i % 5}" / f"sub{i % 3}" / f"file{i}.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(97 * i + 1))
        (tree / "d0" / "link").symlink_to("sub0/file0.txt")
        os.chmod(tree / "d1", 0o750)
        fs = tmp / "fs.img"
        run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tree, fs, "24M"])
        # A GPT disk with the file system in its first partition (1 MiB in).
        disk = tmp / "disk.img"
        with open(disk, "wb") as f:
            f.truncate(32 << 20)
        run(["sgdisk", "-n", "1:2048:+24M", "-t", "1:8300", disk])
        run(["dd", f"if={fs}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc", "status=none"])
        qcow = tmp / "disk.qcow2"
        run([f"{prefix}/bin/qemu-img", "convert", "-O", "qcow2", disk, qcow], env=env)
        sock = tmp / "nbd.sock"
        nbd = subprocess.Popen([f"{prefix}/bin/qemu-nbd", "-r", "-t", "-f", "qcow2", "-k", sock, qcow],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not sock.exists():
                if nbd.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"FAIL: qemu-nbd did not start: {nbd.stderr.read()}")
                time.sleep(0.05)
            index = tmp / "nbd.dsvx"
            out = run([dsvmi, "crawl", "--json", f"nbd+unix:///?socket={sock}", "--index", index])
            print(out)
            summary = [r for r in map(json.loads, out.splitlines()) if r.get("crawl") == "summary"]
            assert summary and summary[0]["partition_table"] == "gpt", "the crawl did not see the GPT partition table"
        finally:
            nbd.terminate()
            nbd.wait(timeout=10)
        dirs, n = crawl_oracle.compare_crawl(dsvmi, index, fs)
        print(f"PASS crawl_nbd_qcow2: {dirs} directories, {n} entries equal to debugfs")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The FAT crawler on a volume Linux itself wrote (label: integration): the
guest mounts a mkfs.vfat FAT32 image through its vfat driver (utf8 names,
shortname=mixed: lower-case 8.3 names get the NT case flags), makes a tree
(long, Unicode, lower/mixed-case and 8.3 names, 300 files in one directory,
an empty file, a 300 KiB file), then renames, moves, deletes and empties some
of it. On the host, `dsvmi crawl` + `dsvmi ls --json` must list exactly what
mtools (`mdir -/ -b -a`) and The Sleuth Kit (`fls -r -p`) list, with the
sizes `istat` gives, and with no problems; fsck.fat -n finds the volume clean.

usage: test_guest_fat_crawl.py --build-dir BUILD
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import guest  # noqa: E402

WORKLOAD = """
mount -t vfat -o iocharset=utf8,shortname=mixed /dev/vda /mnt
mkdir -p /mnt/EFI/BOOT /mnt/EFI/debian /mnt/deep/a/b/c/d/e /mnt/many
echo boot > /mnt/EFI/BOOT/BOOTX64.EFI
dd if=/dev/urandom of=/mnt/EFI/debian/grubx64.efi bs=1k count=300 2>/dev/null
i=0
while [ $i -lt 300 ]; do echo $i > /mnt/many/entry_$i.txt; i=$((i+1)); done
echo lower > /mnt/lower.txt
echo mixed > /mnt/MiXeD.TxT
echo upper > /mnt/UPPER.TXT
echo long > "/mnt/a rather long name, with spaces.text"
echo snow > "/mnt/\u00dcn\u00efc\u00f6d\u00e9 \u2603.txt"
: > /mnt/empty
echo deep > /mnt/deep/a/b/c/d/e/leaf
mv /mnt/many/entry_1.txt /mnt/deep/a/moved.txt
mv /mnt/deep/a/b/c /mnt/c_moved
rm /mnt/many/entry_2.txt /mnt/many/entry_3.txt
: > /mnt/many/entry_4.txt
umount /mnt
"""


def ls_tree(dsvmi, index):
    """Path -> (type letter, size) through `dsvmi ls --json`, directory by
    directory (docs/cli-json.md)."""
    letters = {"file": "-", "dir": "d", "symlink": "l"}
    out, todo = {}, ["/"]
    while todo:
        d = todo.pop()
        for line in guest.run([dsvmi, "ls", "--json", index, d]).stdout.splitlines():
            e = json.loads(line)
            path = d.rstrip("/") + "/" + e["name"]
            out[path] = (letters.get(e["type"], "?"), e["size"])
            if e["type"] == "dir":
                todo.append(path)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "guest_fat_crawl")
    img = work / "fat.img"
    guest.run(["rm", "-f", img])
    guest.run(["mkfs.vfat", "-F", "32", "-s", "1", "-C", img, "65536"])
    vm = guest.Guest(env, work, WORKLOAD, guest.DiskChain(img), extra_append="dsvmi.nomount")
    console = vm.start().wait(timeout=300)
    assert "DSVMI-MODULE-MISSING" not in console, "a module failed to load"
    guest.run(["fsck.fat", "-n", img])

    dsvmi = str(Path(args.build_dir) / "dsvmi")
    index = str(work / "fat.dsvx")
    crawl = guest.run([dsvmi, "crawl", "--json", img, "--index", index]).stdout
    summary = [r for r in map(json.loads, crawl.splitlines()) if r.get("crawl") == "summary"]
    assert len(summary) == 1, crawl  # docs/cli-json.md, `dsvmi crawl --json`
    fss = summary[0]["file_systems"]
    assert [(f["partition"], f["type"], f["problems"], f["error"]) for f in fss] == [(0, "vfat", 0, None)], fss
    ours = ls_tree(dsvmi, index)

    mdir = guest.run(["mdir", "-/", "-b", "-a", "-i", img, "::/"], env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    mtools_paths = {line[2:].rstrip("/") for line in mdir.stdout.splitlines() if line.startswith("::/")}
    assert set(ours) == mtools_paths, ("crawl vs mdir", sorted(set(ours) ^ mtools_paths))

    fls = guest.run(["fls", "-r", "-p", img]).stdout
    tsk = {}
    for line in fls.splitlines():
        m = re.match(r"^([rd])/[rd] (\d+)(?:\([^)]*\))?:\t(.*)$", line)
        if m and "(Volume Label Entry)" not in m.group(3):
            tsk["/" + m.group(3)] = (m.group(1), int(m.group(2)))
    assert set(ours) == set(tsk), ("crawl vs fls", sorted(set(ours) ^ set(tsk)))
    for path, (kind, size) in ours.items():
        assert (kind == "d") == (tsk[path][0] == "d"), path
        if kind == "d":
            continue
        st = guest.run(["istat", img, str(tsk[path][1])]).stdout
        want = int(re.search(r"\nSize: (\d+)", st).group(1))
        assert size == want, (path, size, want)
    for must in ["/lower.txt", "/MiXeD.TxT", "/UPPER.TXT", "/a rather long name, with spaces.text",
                 "/\u00dcn\u00efc\u00f6d\u00e9 \u2603.txt", "/deep/a/moved.txt", "/c_moved/d/e/leaf", "/empty"]:
        assert must in ours, (must, sorted(ours)[:20])
    assert ours["/many/entry_4.txt"][1] == 0
    print(f"PASS guest_fat_crawl ({len(ours)} paths)")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

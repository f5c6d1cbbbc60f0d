"""Compare a dsvmi crawl with debugfs (stdlib only).

compare_crawl(dsvmi, index, fs_image) walks every directory debugfs lists in
the file system image and checks that `dsvmi ls --json INDEX DIR` shows the same
entries: name, inode number, permission bits, uid, gid, size (directories
excepted: debugfs prints no size for them). Raises AssertionError naming the
first directory that differs; returns (directories, entries) compared.
"""

import json
import subprocess


def _run(argv):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def debugfs_dirs(fs_image):
    """{dir path: {name: (ino, perm bits, uid, gid, size or None for a directory)}}
    walking debugfs `ls -p`."""
    out, todo = {}, ["/"]
    while todo:
        d = todo.pop()
        entries = {}
        for line in _run(["debugfs", "-R", f"ls -p {d}", fs_image]).splitlines():
            f = line.split("/")
            if len(f) < 7 or f[5] in ("", ".", "..") or f[1] == "0":
                continue
            ino, mode, uid, gid, name, size = int(f[1]), int(f[2], 8), int(f[3]), int(f[4]), f[5], f[6]
            is_dir = mode & 0o170000 == 0o040000
            entries[name] = (ino, mode & 0o7777, uid, gid, None if is_dir else int(size))
            if is_dir:
                todo.append(d.rstrip("/") + "/" + name)
        out[d] = entries
    return out


def dsvmi_dir(dsvmi, index, d):
    """{name: (ino, perm bits, uid, gid, size or None)} from `dsvmi ls --json
    INDEX DIR` (docs/cli-json.md)."""
    entries = {}
    for line in _run([dsvmi, "ls", "--json", index, d]).splitlines():
        e = json.loads(line)
        entries[e["name"]] = (e["ino"], e["mode"], e["uid"], e["gid"], None if e["type"] == "dir" else e["size"])
    return entries


def compare_crawl(dsvmi, index, fs_image):
    want = debugfs_dirs(fs_image)
    for d, entries in sorted(want.items()):
        got = dsvmi_dir(dsvmi, index, d)
        if got != entries:
            diff = sorted(set(got.items()) ^ set(entries.items()), key=str)
            raise AssertionError(f"{d}: the crawl differs from debugfs: {diff[:6]}")
    return len(want), sum(len(e) for e in want.values())

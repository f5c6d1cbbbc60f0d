"""The fidelity workload: a guest script exercising the ext4 operations dsvmi
must see (create, write, append, rename within/across directories and over an
existing file, hard link, short and long symlink, delete, rm -r, truncate down
and up, in-place rewrite), and the host-side oracle that checks its result
with debugfs on the final image.

The contents are deterministic (except a/random), so the oracle can name the
exact bytes each file must hold."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import guest  # noqa: E402

LONG_TARGET = "/this/is/a/symlink/target/longer/than/sixty/bytes/so/it/needs/its/own/block"
BIG_LINE = b"dsvmi-fidelity\n"
BIG_SIZE = 3_000_000

# Files present in the original image (mkfs.ext4 -d).
INITIAL_TREE = {
    "etc/motd": b"original motd\n",
    "old/keep": b"keep me\n",
    "old/overwrite-me": b"x" * 20000,
    "old/delete-me": b"y" * 9000,
}


def script(trim=False):
    """The workload, run by the guest with `sh -e` in /mnt."""
    s = f"""
mkdir -p a/b/c d
i=0
while [ $i -lt 40 ]; do echo "file $i" > a/f$i; i=$((i + 1)); done
yes dsvmi-fidelity | head -c {BIG_SIZE} > a/b/c/big
echo appended >> a/f1
mv a/f2 a/f2.renamed
mv a/f3 d/f3
echo victim > d/victim
sync
mv a/f4 d/victim
ln a/f5 d/f5.hard
ln -s ../a/f6 d/f6.sym
ln -s {LONG_TARGET} d/long.sym
rm a/f7 a/f8
mkdir -p tmp/x/y
echo z > tmp/x/y/z
rm -r tmp
rm old/delete-me
yes abc | head -c 50000 > a/shrink
sync
truncate -s 1000 a/shrink
echo grow > a/grow
truncate -s 200000 a/grow
dd if=/dev/urandom of=a/random bs=4096 count=64 2>/dev/null
dd if=/dev/zero of=old/overwrite-me bs=4096 count=2 conv=notrunc 2>/dev/null
sync
"""
    if trim:
        # Discards of all free space: exercises Discard frames on replay.
        s += "fstrim -v /mnt\n"
    s += "echo DSVMI-FS-OPS-DONE\n"
    return s



def _cat_bytes(image, path):
    import subprocess
    r = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True)
    if r.returncode != 0 or b"not found" in r.stderr:
        raise AssertionError(f"debugfs cat {path}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def _stat(image, path):
    import subprocess
    r = subprocess.run(["debugfs", "-R", f"stat {path}", str(image)], capture_output=True, text=True)
    if "not found" in r.stderr:
        return None
    return r.stdout


def _field(stat_text, name):
    import re
    m = re.search(rf"{name}:\s*(\S+)", stat_text)
    return m.group(1) if m else None


def check(image):
    """Asserts (via debugfs, read-only) that `image` holds the workload's
    result. Raises AssertionError naming the first difference."""
    def expect_bytes(path, want):
        got = _cat_bytes(image, path)
        assert got == want, f"{path}: {len(got)} bytes differ from the expected {len(want)}"

    def expect_absent(path):
        assert _stat(image, path) is None, f"{path} should be gone"

    expect_bytes("/etc/motd", INITIAL_TREE["etc/motd"])
    expect_bytes("/old/keep", INITIAL_TREE["old/keep"])
    expect_absent("/old/delete-me")
    expect_bytes("/old/overwrite-me", b"\0" * 8192 + b"x" * (20000 - 8192))
    for i in range(40):
        if i in (1, 2, 3, 4, 7, 8):
            continue
        expect_bytes(f"/a/f{i}", f"file {i}\n".encode())
    expect_bytes("/a/f1", b"file 1\nappended\n")
    expect_absent("/a/f2")
    expect_bytes("/a/f2.renamed", b"file 2\n")
    expect_absent("/a/f3")
    expect_bytes("/d/f3", b"file 3\n")
    expect_absent("/a/f4")
    expect_bytes("/d/victim", b"file 4\n")
    expect_absent("/a/f7")
    expect_absent("/a/f8")
    expect_absent("/tmp")
    big = (BIG_LINE * (BIG_SIZE // len(BIG_LINE) + 1))[:BIG_SIZE]
    expect_bytes("/a/b/c/big", big)
    expect_bytes("/a/shrink", (b"abc\n" * 250)[:1000])
    grow = _stat(image, "/a/grow")
    assert grow and _field(grow, "Size") == "200000", f"/a/grow size: {grow}"
    expect_bytes("/a/grow", b"grow\n" + b"\0" * (200000 - 5))
    rnd = _stat(image, "/a/random")
    assert rnd and _field(rnd, "Size") == str(64 * 4096), "/a/random size"
    # Hard link: one inode, two names, link count 2.
    s5, s5h = _stat(image, "/a/f5"), _stat(image, "/d/f5.hard")
    assert s5 and s5h and _field(s5, "Inode") == _field(s5h, "Inode"), "f5 hard link: inodes differ"
    assert _field(s5, "Links") == "2", f"f5 link count {_field(s5, 'Links')}"
    # Symlinks: a fast one (target in the inode) and a slow one (own block).
    s6 = _stat(image, "/d/f6.sym")
    assert s6 and 'Fast link dest: "../a/f6"' in s6, f"short symlink: {s6}"
    sl = _stat(image, "/d/long.sym")
    assert sl and "Type: symlink" in sl and _field(sl, "Size") == str(len(LONG_TARGET)), "long symlink"
    expect_bytes("/d/long.sym", LONG_TARGET.encode())

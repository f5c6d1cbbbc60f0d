#!/usr/bin/env python3
"""The test guest can mount FAT32 (label: integration): its initramfs carries
the fat/vfat/nls modules the later FAT tests need (this kernel's default FAT
iocharset is ascii, so nls_ascii must be there too). The guest mounts a
mkfs.vfat image itself (dsvmi.nomount), writes a file and a directory; the
host reads them back with mtools (oracle).

usage: test_guest_vfat_smoke.py --build-dir BUILD
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import guest  # noqa: E402

WORKLOAD = """
mount -t vfat /dev/vda /mnt
mkdir /mnt/DIR
echo "hello from the guest" > /mnt/DIR/HELLO.TXT
umount /mnt
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "guest_vfat_smoke")
    img = work / "fat.img"
    guest.run(["truncate", "-s", "64M", img])
    guest.run(["mkfs.vfat", "-F", "32", img])
    vm = guest.Guest(env, work, WORKLOAD, guest.DiskChain(img), extra_append="dsvmi.nomount")
    console = vm.start().wait(timeout=120)
    assert "DSVMI-MODULE-MISSING" not in console, "a module failed to load"
    got = guest.run(["mtype", "-i", img, "::DIR/HELLO.TXT"]).stdout
    assert got == "hello from the guest\n", f"mtype read {got!r}"
    guest.run(["fsck.vfat", "-n", img])
    print("PASS guest_vfat_smoke")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

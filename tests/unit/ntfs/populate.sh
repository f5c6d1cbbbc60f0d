#!/bin/sh
# Populates the NTFS volume in image $1 (made by mkntfs) for ntfs_crawl_test:
# a few files offline with ntfscp, then the rest through ntfs-3g mounted on
# the host through FUSE at $2: directories, a deep tree, many files (some
# deleted, then more, so records are reused with new sequence numbers), long
# and Unicode names, hard links, alternate data streams, sparse and
# compressed files, ntfs-3g (Interix) symlinks and reparse-point symlinks
# and junctions. Exit 77 when FUSE cannot be used here.
set -eu
img=$1 mnt=$2 work=$3
head -c 70000 /dev/urandom >"$work/offline.bin"
ntfscp -f "$img" "$work/offline.bin" offline.bin >/dev/null
exec 3<>/dev/fuse 2>/dev/null || exit 77
exec 3>&-
mkdir -p "$mnt"
ntfs-3g -o streams_interface=xattr "$img" "$mnt" || exit 77
trap 'umount "$mnt" 2>/dev/null || true' EXIT
cd "$mnt"
mkdir -p deep many names links streams sparse compressed
d=deep
for i in $(seq 1 40); do d=$d/level$i; done
mkdir -p "$d" && echo leaf >"$d/leaf.txt"
i=0
while [ $i -lt 1500 ]; do : >"many/f$i" && [ $((i % 7)) -ne 0 ] || printf '%0*d' $((i % 3000)) 0 >"many/f$i"; i=$((i + 1)); done
i=0
while [ $i -lt 1500 ]; do rm "many/f$i"; i=$((i + 3)); done
# Fill the volume but a few MiB, so that the MFT grows into whatever is
# left (fragments), then free the filler for the rest.
free=$(df -k --output=avail . | tail -1)
head -c $(((free - 3072) * 1024)) /dev/zero >filler.bin
head -c 200000 /dev/urandom >big_between.bin
i=0
while [ $i -lt 1200 ]; do echo "second $i" >"many/g$i"; i=$((i + 1)); done
echo x >"names/$(printf 'L%.0s' $(seq 1 255))"
echo u >"names/Ünïcödé ☃ snow.txt"
echo e >"names/emoji 😀.bin"
echo s >"names/a name with spaces.txt"
echo m >"names/MixedCase.Txt"
echo l >"names/Long File Name Needing An Alias.text"
rm filler.bin
python3 -c 'import os; os.setxattr("names/Long File Name Needing An Alias.text", "system.ntfs_dos_name", b"LONGFI~1.TEX")'
echo shared >links/original
ln links/original links/second
ln links/original names/third_link
i=0
while [ $i -lt 60 ]; do ln links/original "links/many_link_$i"; i=$((i + 1)); done
echo main >streams/with_ads
python3 - <<'PY'
import os
os.setxattr("streams/with_ads", "user.small", b"resident stream")
os.setxattr("streams/with_ads", "user.big", os.urandom(20000))
PY
truncate -s 50000000 sparse/holes.bin
printf 'middle' | dd of=sparse/holes.bin bs=1 seek=20000000 conv=notrunc status=none
printf 'end' >>sparse/holes.bin
python3 - <<'PY'
import os, struct
# Compression for new files in this directory (ntfs-3g: clusters <= 4 KiB).
a = struct.unpack(">I", os.getxattr("compressed", "system.ntfs_attrib_be"))[0]
os.setxattr("compressed", "system.ntfs_attrib_be", struct.pack(">I", a | 0x800))
def reparse(path, tag, subst, printed, flags):
    s, p = subst.encode("utf-16-le"), printed.encode("utf-16-le")
    body = struct.pack("<HHHH", 0, len(s), len(s), len(p))
    if tag == 0xA000000C:
        body += struct.pack("<I", flags)
    body += s + p
    os.setxattr(path, "system.ntfs_reparse_data", struct.pack("<IHH", tag, len(body), 0) + body)
open("links/reparse_symlink", "w").close()
reparse("links/reparse_symlink", 0xA000000C, "..\\names\\MixedCase.Txt", "..\\names\\MixedCase.Txt", 1)
os.mkdir("links/junction")
reparse("links/junction", 0xA0000003, "\\??\\C:\\Windows", "C:\\Windows", 0)
PY
head -c 300000 /dev/zero >compressed/zeros.bin
yes compressible | head -c 200000 >compressed/text.txt
ln -s ../names/MixedCase.Txt links/interix_symlink
ln -s /absolute/target links/absolute_symlink
cd /
umount "$mnt"
trap - EXIT

#!/bin/sh
# Seed corpora for the NTFS fuzzers, from a small volume made by mkntfs with
# files copied in by ntfscp: the whole volume (fuzz_ntfs), its boot sector
# (fuzz_ntfs_boot), File Records ($MFT, $Volume, the root, a file:
# fuzz_ntfs_record, whose runlists also seed fuzz_ntfs_runlist) and the
# root's first index block when there is one (fuzz_ntfs_index).
set -eu
out=$1
mkdir -p "$out/volume" "$out/boot" "$out/record" "$out/index"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
img=$work/v.img
# libFuzzer cuts inputs at 1 MiB; mkntfs needs a little more (the backup
# boot sector): make 1040 KiB, then cut the seed to 1 MiB and its sector
# count to match below.
truncate -s 1040K "$img"
mkntfs -F -Q -c 512 -s 512 "$img" >/dev/null 2>&1
echo hello >"$work/small"
head -c 3000 /dev/zero | tr '\0' 'z' >"$work/big"
ntfscp "$img" "$work/small" small.txt >/dev/null
ntfscp "$img" "$work/big" big.bin >/dev/null
i=0
while [ $i -lt 20 ]; do ntfscp "$img" "$work/small" "entry_$i" >/dev/null; i=$((i + 1)); done
truncate -s 1M "$img"
printf '\377\007\000\000\000\000\000\000' | dd of="$img" bs=1 seek=40 conv=notrunc status=none  # 2047 sectors
cp "$img" "$out/volume/v.img"
dd if="$img" of="$out/boot/boot.bin" bs=512 count=1 status=none
# The MFT's first cluster (little-endian 64-bit at 0x30), 512-byte clusters.
mft=$(od -An -t u8 -j 48 -N 8 "$img" | tr -d ' ')
for r in 0 3 5 64 65; do
  dd if="$img" of="$out/record/r$r.bin" bs=1024 skip=$((mft / 2 + r)) count=1 status=none
done
# INDX blocks anywhere in the volume (4096-byte index blocks at 512-byte clusters).
n=0
for off in $(grep -obUa INDX "$img" | cut -d: -f1 | head -4); do
  [ $((off % 512)) -eq 0 ] || continue
  dd if="$img" of="$out/index/indx$n.bin" bs=512 skip=$((off / 512)) count=8 status=none
  n=$((n + 1))
done

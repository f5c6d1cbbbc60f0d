#!/bin/sh
# Seed corpora for the FAT fuzzers: small volumes made by mkfs.vfat: FAT12
# populated by mtools with short, long and Unicode names, subdirectories, a
# multi-cluster file and a deleted entry; a FAT32 with fewer clusters than
# usual (Linux mounts it; mtools will not write to it, so it holds only its
# root and label). Their boot sectors, FATs and directories seed the
# parser-level fuzzers.
set -eu
out=$1
mkdir -p "$out/crawl" "$out/bpb" "$out/chain" "$out/dir"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/sub/deeper"
echo hello > "$tree/HELLO.TXT"
echo mixed > "$tree/Mixed Case Long Name.txt"
printf 'x' > "$tree/sub/deeper/$(printf '\303\234nic\303\266de \342\230\203.txt')"
head -c 3000 /dev/zero | tr '\0' 'z' > "$tree/sub/three_k.bin"
: > "$tree/empty"
mk() {
  name=$1; shift
  rm -f "$out/crawl/$name"
  mkfs.vfat "$@" -n SEED -C "$out/crawl/$name" 128 >/dev/null 2>&1
}
mk fat32.img -F 32 -s 1
mk fat12.img -F 12 -s 1 -r 32
MTOOLS_SKIP_CHECK=1 mcopy -s -Q -i "$out/crawl/fat12.img" "$tree"/* ::/
MTOOLS_SKIP_CHECK=1 mdel -i "$out/crawl/fat12.img" ::/empty
for f in fat32 fat12; do
  dd if="$out/crawl/$f.img" of="$out/bpb/$f.bin" bs=512 count=2 status=none
done
# fuzz_fat_chain: a width selector byte (0: FAT12, 2: FAT32), then the FAT.
{ printf '\000'; dd if="$out/crawl/fat12.img" bs=512 skip=1 count=1 status=none; } > "$out/chain/fat12.bin"
{ printf '\002'; dd if="$out/crawl/fat32.img" bs=512 skip=32 count=2 status=none; } > "$out/chain/fat32.bin"
# Root directories: FAT32's is cluster 2 (after 32 reserved sectors and two
# 2-sector FATs); FAT12's root and first clusters follow one reserved sector
# and two 1-sector FATs.
dd if="$out/crawl/fat32.img" of="$out/dir/fat32_root.bin" bs=512 skip=36 count=1 status=none
dd if="$out/crawl/fat12.img" of="$out/dir/fat12_data.bin" bs=512 skip=3 count=16 status=none

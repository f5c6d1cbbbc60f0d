#!/bin/sh
# Seed corpus for fuzz_ext4: small valid images made by mkfs.ext4 (ext4 with
# extents and metadata_csum, ext2 with indirect maps, inline_data).
set -eu
out=$1
mkdir -p "$out"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/d/e"
echo hello > "$tree/d/file"
head -c 5000 /dev/zero | tr '\0' 'z' > "$tree/d/e/five_k"
ln -s file "$tree/d/fast"
ln "$tree/d/file" "$tree/hard"
for i in 1 2 3 4 5 6 7 8; do : > "$tree/d/entry_$i"; done
mk() { name=$1; size=$2; shift 2; rm -f "$out/$name"; mkfs.ext4 -q -F -E root_owner=0:0 -b 1024 -N 32 "$@" -d "$tree" "$out/$name" "$size" >/dev/null 2>&1; }
mk ext4.img 96k -O ^has_journal,^resize_inode
mk ext2.img 96k -t ext2 -O ^resize_inode
mk inline.img 96k -O ^has_journal,^resize_inode,inline_data

#!/usr/bin/env bash
# Makes (or reuses) an ext4 image with about N in-use inodes for bench_crawl,
# shaped like the seed's Table 2.2 experiment (empty files made by `touch`),
# but spread over directories of 1000 files (one 1M-entry directory is a
# pathological htree, not a typical disk). Cached outside the checkout:
#   bench/make_crawl_image.sh 1000000   -> prints the image path
# With FS=ntfs the same tree is written into an NTFS volume (mkntfs, 4 KiB
# clusters) through ntfs-3g mounted via FUSE (mkntfs has no -d):
#   bench/make_crawl_image.sh 100000 ntfs
set -euo pipefail
N=${1:?usage: make_crawl_image.sh INODES [ext4|ntfs]}
FS=${2:-ext4}
CACHE=${DSVMI_CACHE_DIR:-/var/tmp/dsvmi-cache}
IMG=$CACHE/crawl-${N}.img
[ "$FS" = ext4 ] || IMG=$CACHE/crawl-$FS-${N}.img
mkdir -p "$CACHE"
if [ ! -s "$IMG" ]; then
  TREE=$(mktemp -d "$CACHE/tree.XXXXXX")
  trap 'umount "$TREE" 2>/dev/null || true; rm -rf "$TREE"' EXIT
  if [ "$FS" = ntfs ]; then
    # 1 KiB File Records (2 KiB of room per file) plus 256 MiB.
    truncate -s $(( (N * 2048 + 256 * 1024 * 1024) / 1048576 ))M "$IMG.tmp"
    mkntfs -F -Q -c 4096 -L BENCH "$IMG.tmp" >/dev/null 2>&1
    ntfs-3g -o big_writes "$IMG.tmp" "$TREE"
  fi
  python3 - "$TREE" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per_dir = 1000
for i in range(n - n // per_dir - 16):
    d = os.path.join(root, "d%04d" % (i // per_dir))
    if i % per_dir == 0:
        os.mkdir(d)
    os.close(os.open(os.path.join(d, "file-%07d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
  if [ "$FS" = ntfs ]; then
    umount "$TREE"
  else
    # 4 KiB blocks, inode table sized for N, sparse output file.
    SIZE=$(( (N * 256 + N * 48 + 256 * 1024 * 1024) / 1048576 ))M
    mkfs.ext4 -q -F -b 4096 -N $(( N + N / 50 )) -d "$TREE" "$IMG.tmp" "$SIZE"
  fi
  mv "$IMG.tmp" "$IMG"
fi
echo "$IMG"

#!/usr/bin/env bash
# Makes (or reuses) an image with about N in-use inodes for bench_crawl,
# shaped like the seed's Table 2.2 experiment (empty files made by `touch`),
# but spread over directories of 1000 files (one 1M-entry directory is a
# pathological htree, not a typical disk; FAT caps a directory at 65536
# entries). Cached outside the checkout:
#   bench/make_crawl_image.sh 1000000        -> ext4; prints the image path
#   bench/make_crawl_image.sh 100000 vfat    -> the same tree on FAT32 (mcopy)
#   bench/make_crawl_image.sh 100000 ntfs    -> on NTFS (mkntfs, 4 KiB clusters,
#                                               written through ntfs-3g over FUSE:
#                                               mkntfs has no -d)
set -euo pipefail
N=${1:?usage: make_crawl_image.sh INODES [ext4|vfat|ntfs]}
FS=${2:-ext4}
CACHE=${DSVMI_CACHE_DIR:-/var/tmp/dsvmi-cache}
case "$FS" in
  ext4) IMG=$CACHE/crawl-${N}.img ;;
  vfat) IMG=$CACHE/crawl-${N}-vfat.img ;;
  ntfs) IMG=$CACHE/crawl-ntfs-${N}.img ;;
  *) echo "make_crawl_image.sh: unknown file system '$FS' (ext4, vfat or ntfs)" >&2; exit 2 ;;
esac
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
  # FAT: 8.3 names ("F0000001"); long names that share a prefix make mcopy
  # search ~N numeric tails per file (hours for 100k files).
  python3 - "$TREE" "$N" "$FS" <<'PY'
import os, sys
root, n, fs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
per_dir = 1000
dname, fname = ("D%04d", "F%07d") if fs == "vfat" else ("d%04d", "file-%07d")
for i in range(n - n // per_dir - 16):
    d = os.path.join(root, dname % (i // per_dir))
    if i % per_dir == 0:
        os.mkdir(d)
    os.close(os.open(os.path.join(d, fname % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
  if [ "$FS" = ntfs ]; then
    umount "$TREE"
  elif [ "$FS" = vfat ]; then
    # FAT32, 4 KiB clusters, at least the 65525 clusters FAT32 needs.
    KIB=$(( N / 8 + 300 * 1024 ))
    rm -f "$IMG.tmp"
    mkfs.vfat -F 32 -s 8 -C "$IMG.tmp" "$KIB" >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -s -Q -i "$IMG.tmp" "$TREE"/* ::/
  else
    # 4 KiB blocks, inode table sized for N, sparse output file.
    SIZE=$(( (N * 256 + N * 48 + 256 * 1024 * 1024) / 1048576 ))M
    mkfs.ext4 -q -F -b 4096 -N $(( N + N / 50 )) -d "$TREE" "$IMG.tmp" "$SIZE"
  fi
  mv "$IMG.tmp" "$IMG"
fi
echo "$IMG"

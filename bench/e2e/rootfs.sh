#!/usr/bin/env bash
# Builds the benchmark guest's disk: a Debian 12 (bookworm) root file system
# made with debootstrap, holding everything the workloads need, packed into a
# sparse raw ext4 image. Cached outside the checkout:
#
#   bench/e2e/rootfs.sh [--print-image]     build (or reuse); prints the image path
#
# Cache: $DSVMI_CACHE_DIR/bench-rootfs-<key>/ (default ~/.cache/dsvmi), key =
# sha256 of this script and scripts/lib/apt-source.sh (the recipe). It holds
#   disk.img     raw ext4, 4 GiB sparse, the pristine image (runs use copies)
#   recipe.txt   what is inside (package versions, source tree, .deb sets)
# Inside the image (the guest chroots into it; it never boots systemd):
#   bonnie++, postmark, gcc/make (the Andrew-like Make phase)
#   /bench/src/zlib-*        a real C source tree (Debian's zlib orig tarball)
#   /bench/debs-quick/*.deb  a small package set with every missing dependency
#   /bench/debs-full/*.deb   a larger server-ish set (apache2, php, git, ...)
#   /usr/sbin/policy-rc.d    exit 101: installed daemons are not started
# Needs: debootstrap, apt-get (deb-src for zlib), mkfs.ext4; root (debootstrap, chroot).
. "$(cd "$(dirname "$0")/../.." && pwd)/scripts/lib/errexit.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/apt-source.sh
. "$HERE/../../scripts/lib/apt-source.sh"
CACHE=${DSVMI_CACHE_DIR:-$HOME/.cache/dsvmi}
log() { printf 'bench/e2e/rootfs.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUITE=bookworm
MIRROR=${DSVMI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGE_SIZE=4G
BASE_PKGS=bonnie++,postmark,make,gcc,libc6-dev,procps,e2fsprogs
QUICK_DEBS="sqlite3 jq tree rsync"
FULL_DEBS="apache2 php8.2-cli git sqlite3 jq tree rsync"
SRC_PKG=zlib

case "${1:-}" in
  "" | --print-image) ;;
  -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "debootstrap and chroot need root"
for tool in debootstrap apt-get mkfs.ext4 flock sha256sum tar; do
  command -v "$tool" >/dev/null || die "'$tool' not found (run scripts/install-deps.sh)"
done

KEY=$(cat "$HERE/rootfs.sh" "$HERE/../../scripts/lib/apt-source.sh" | sha256sum | cut -c1-16)
OUT="$CACHE/bench-rootfs-$KEY"
mkdir -p "$CACHE"
exec 9>"$CACHE/bench-rootfs.lock"
flock 9

if [ -f "$OUT/.complete" ]; then
  echo "$OUT/disk.img"
  exit 0
fi

log "building $OUT (debootstrap $SUITE from $MIRROR; 5-15 minutes)"
WORK=$(mktemp -d "$CACHE/bench-rootfs-build.XXXXXX")
chmod 755 "$WORK"
ROOT="$WORK/root"
cleanup() {
  for m in proc sys dev/pts dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

debootstrap --variant=minbase --include="$BASE_PKGS" "$SUITE" "$ROOT" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
mkdir -p "$ROOT/bench/src" "$ROOT/bench/tmp"

# The software-install sets: download (never install) each set with every
# dependency the base lacks, then move the .debs out of apt's cache.
mount -t proc proc "$ROOT/proc"
for set in quick full; do
  pkgs=$QUICK_DEBS
  [ $set = full ] && pkgs=$FULL_DEBS
  chroot "$ROOT" apt-get clean
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only \
    --no-install-recommends $pkgs >"$WORK/apt-$set.log" 2>&1 ||
    { tail -20 "$WORK/apt-$set.log" >&2; die "downloading the $set .deb set failed"; }
  mkdir -p "$ROOT/bench/debs-$set"
  mv "$ROOT"/var/cache/apt/archives/*.deb "$ROOT/bench/debs-$set/"
done
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/*
umount "$ROOT/proc"

# The Andrew-like source tree: Debian's zlib source (orig tarball), the first
# version apt-cache showsrc lists that the registry really serves (the
# security suite's source pool may answer 404; scripts/lib/apt-source.sh).
apt_source_ensure_deb_src || die "no deb-src entry for apt-get source"
SRC_VERSION=$(apt_source_download "$SRC_PKG" "$WORK" "$WORK/src.log") ||
  die "could not download any version of the $SRC_PKG source package"
log "source tree: $SRC_PKG $SRC_VERSION"
shopt -s nullglob
ORIGS=("$WORK"/"${SRC_PKG}"_*.orig.tar.*)
shopt -u nullglob
((${#ORIGS[@]})) || die "no $SRC_PKG orig tarball after downloading $SRC_PKG=$SRC_VERSION"
ORIG=${ORIGS[0]}
tar -C "$ROOT/bench/src" -xf "$ORIG"
SRC_DIR=$(cd "$ROOT/bench/src" && ls -d */ | head -1)
SRC_DIR=${SRC_DIR%/}
ln -s "$SRC_DIR" "$ROOT/bench/src/tree"

STAGE="$WORK/out"
mkdir -p "$STAGE"
{
  echo "debootstrap --variant=minbase --include=$BASE_PKGS $SUITE $MIRROR"
  echo "kernel-independent; used by bench/e2e (see docs/benchmarks.md)"
  echo "source tree: /bench/src/$SRC_DIR ($SRC_PKG $SRC_VERSION, $(find "$ROOT/bench/src/$SRC_DIR" -type f | wc -l) files, $(du -sh "$ROOT/bench/src/$SRC_DIR" | cut -f1))"
  for set in quick full; do
    echo "debs-$set: $(ls "$ROOT/bench/debs-$set" | wc -l) files, $(du -sh "$ROOT/bench/debs-$set" | cut -f1)"
  done
  echo "packages:"
  chroot "$ROOT" dpkg-query -W -f='  ${Package} ${Version}\n'
} >"$STAGE/recipe.txt"
du -sh "$ROOT" | sed 's/^/rootfs size: /' >>"$STAGE/recipe.txt"

# Inode tables and the journal are written at mkfs time, so the guest kernel
# doesn't zero them lazily while a workload is being timed.
mkfs.ext4 -q -F -b 4096 -L dsvmi-bench -d "$ROOT" \
  -E lazy_itable_init=0,lazy_journal_init=0 "$STAGE/disk.img" "$IMAGE_SIZE" ||
  die "mkfs.ext4 -d failed"
touch "$STAGE/.complete"
rm -rf "$OUT"
mv "$STAGE" "$OUT"
log "done: $OUT"
echo "$OUT/disk.img"

#!/usr/bin/env bash
# Builds the dsvmi test guest: Debian's cloud kernel + a busybox-static
# initramfs that loads the virtio (and FAT) modules, mounts /dev/vda on /mnt,
# runs /workload.sh and powers off. See docs/testing.md.
#
#   tests/guest/build.sh               build (or reuse) the guest, print its dir
#   tests/guest/build.sh --print-dir   same; stdout carries only the directory
#
# The result is cached in $DSVMI_CACHE_DIR/guest-<key> (default
# ~/.cache/dsvmi), keyed by the kernel package and version and a hash of
# tests/guest/*, so it is built once per machine. The directory holds:
#   vmlinuz       the kernel
#   initrd.gz     the base initramfs (a test appends its own cpio.gz with
#                 /workload.sh: the kernel unpacks concatenated archives)
#   firmware/     SeaBIOS + option ROMs for `qemu-system-x86_64 -L`
#   kernel.txt    kernel package name and version
# The kernel is downloaded with `apt-get download` and unpacked with
# `dpkg-deb -x`: it is never installed on the host.
. "$(cd "$(dirname "$0")/../.." && pwd)/scripts/lib/errexit.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${DSVMI_CACHE_DIR:-$HOME/.cache/dsvmi}
log() { printf 'guest/build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "${1:-}" in
  "" | --print-dir) ;;
  -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

for tool in apt-cache apt-get dpkg-deb cpio gzip flock sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (run scripts/install-deps.sh)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox not found (install busybox-static)"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is dynamically linked; install busybox-static"
[ -f /usr/share/seabios/bios-256k.bin ] || die "SeaBIOS missing (install seabios)"
[ -f /usr/share/qemu/linuxboot_dma.bin ] || die "option ROMs missing (install qemu-system-data)"

# The kernel the cloud metapackage points at today, e.g. linux-image-6.1.0-56-cloud-amd64.
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
[ -n "$KPKG" ] || die "apt-cache depends linux-image-cloud-amd64 names no kernel (apt-get update?)"
KVER_PKG=$(apt-cache policy "$KPKG" | sed -n 's/^ *Candidate: //p')
[ -n "$KVER_PKG" ] && [ "$KVER_PKG" != "(none)" ] || die "no candidate version for $KPKG"

SRC_HASH=$(cd "$HERE" && find . -maxdepth 1 -type f -print0 | sort -z | xargs -0 sha256sum |
  sha256sum | cut -c1-16)
KEY=$(printf '%s %s %s' "$KPKG" "$KVER_PKG" "$SRC_HASH" | sha256sum | cut -c1-16)
OUT="$CACHE/guest-$KEY"

mkdir -p "$CACHE"
exec 9>"$CACHE/guest.lock"
flock 9 # Parallel ctest runs or test.sh invocations build it once.

if [ -f "$OUT/.complete" ]; then
  echo "$OUT"
  exit 0
fi

log "building $OUT ($KPKG $KVER_PKG)"
WORK=$(mktemp -d "$CACHE/guest-build.XXXXXX")
chmod 755 "$WORK" # apt-get download hands the file to user _apt
trap 'rm -rf "$WORK"' EXIT

APT_OPTS=()
# As root, apt hands downloads to user _apt, who can't enter ~root: say so
# once here instead of a warning on every build.
[ "$(id -u)" -eq 0 ] && APT_OPTS=(-o APT::Sandbox::User=root)
(cd "$WORK" && apt-get download -q "${APT_OPTS[@]}" "$KPKG=$KVER_PKG" >&2) || die "apt-get download $KPKG failed"
dpkg-deb -x "$WORK"/"$KPKG"_*.deb "$WORK/kernel" || die "dpkg-deb -x failed"
VMLINUZ=$(ls "$WORK"/kernel/boot/vmlinuz-* 2>/dev/null | head -1)
[ -n "$VMLINUZ" ] || die "no boot/vmlinuz-* in $KPKG"
KREL=${VMLINUZ##*/vmlinuz-}
MODDIR="$WORK/kernel/lib/modules/$KREL"
[ -f "$MODDIR/modules.order" ] || die "no modules.order in $KPKG"

# The modules the guest needs, plus everything they depend on. The package
# ships no modules.dep (depmod runs at install time, which we skip), so the
# dependencies come from each module's own .modinfo "depends=" string.
# Modules built into this kernel (ext4 in the cloud flavour) are skipped.
WANTED=(virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk
  fat vfat msdos nls_cp437 nls_iso8859-1 nls_utf8 nls_ascii)
declare -A want_path=()
add_module() { # $1: module name; adds its path and (recursively) its deps
  local name=$1 pattern path deps dep
  pattern="(^|/)${name//[-_]/[-_]}\.ko(\.xz|\.zst|\.gz)?$"
  path=$(grep -E "$pattern" "$MODDIR/modules.order" | head -1) || true
  if [ -z "$path" ]; then
    grep -qE "$pattern" "$MODDIR/modules.builtin" && return 0
    die "module $name is neither in modules.order nor built in ($KREL)"
  fi
  [ -n "${want_path[$path]:-}" ] && return 0
  want_path[$path]=1
  case "$path" in
    *.ko) deps=$(grep -aoE 'depends=[a-z0-9_,-]*' "$MODDIR/$path" | head -1) || true ;;
    *.ko.xz) deps=$(xz -dc "$MODDIR/$path" | grep -aoE 'depends=[a-z0-9_,-]*' | head -1) || true ;;
    *) die "compressed module $path: add its decompressor here" ;;
  esac
  deps=${deps#depends=}
  for dep in ${deps//,/ }; do add_module "$dep"; done
}
for m in "${WANTED[@]}"; do add_module "$m"; done

ROOT="$WORK/initramfs"
mkdir -p "$ROOT"/{bin,dev,proc,sys,mnt,tmp,modules}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for path in "${!want_path[@]}"; do
  src="$MODDIR/$path"
  name=${path##*/}
  case "$name" in
    *.ko) cp "$src" "$ROOT/modules/$name" ;;
    *.ko.xz) xz -dc "$src" >"$ROOT/modules/${name%.xz}" ;;
    *) die "unexpected module file $name" ;;
  esac
done
install -m 0755 "$HERE/init" "$ROOT/init"
log "initramfs: busybox + $(ls "$ROOT/modules" | wc -l) modules from $KREL"

STAGE="$WORK/out"
mkdir -p "$STAGE/firmware"
cp "$VMLINUZ" "$STAGE/vmlinuz"
(cd "$ROOT" && find . -print0 | sort -z | cpio --null -o -H newc --quiet -R 0:0) | gzip -9n >"$STAGE/initrd.gz"
# Firmware for -L: the dfsg QEMU source ships none. q35 needs the BIOS and the
# -kernel option ROMs; the VGA BIOS is there for runs that keep a VGA device.
cp /usr/share/seabios/bios-256k.bin /usr/share/seabios/vgabios-stdvga.bin "$STAGE/firmware/"
cp /usr/share/qemu/kvmvapic.bin /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/linuxboot.bin \
  "$STAGE/firmware/"
printf '%s %s %s\n' "$KPKG" "$KVER_PKG" "$KREL" >"$STAGE/kernel.txt"
touch "$STAGE/.complete"

rm -rf "$OUT"
mv "$STAGE" "$OUT"
log "done: $OUT"
echo "$OUT"

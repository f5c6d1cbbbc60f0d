#!/usr/bin/env bash
# Builds Debian 12's QEMU with the dsvmi filter driver (the patch series in
# this folder) and installs it into a cache outside the checkout:
#
#   qemu-patches/build.sh [--print-prefix] DSVMI_BUILD_DIR
#
# DSVMI_BUILD_DIR is a dsvmi CMake build holding lib/libdsvmi-producer.so and
# lib/pkgconfig/dsvmi-producer.pc (QEMU links the producer library through
# pkg-config; at run time it is found through LD_LIBRARY_PATH=<build>/lib, so
# the library may change without rebuilding QEMU as long as its C ABI headers
# do not; the binaries' RUNPATH names the build dir they were linked against,
# LD_LIBRARY_PATH overrides it).
#
# The install prefix is $DSVMI_CACHE_DIR/qemu-<debian version>-<hash>, hash =
# sha256 of the patches, ring.h and gate.h (the C ABI compiled in, comments
# stripped) and the configure flags. A cache hit does no work. --print-prefix prints only the
# prefix on stdout (everything else goes to stderr).
. "$(cd "$(dirname "$0")/.." && pwd)/scripts/lib/errexit.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PRINT_PREFIX=0
if [ "${1:-}" = "--print-prefix" ]; then
  PRINT_PREFIX=1
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--print-prefix] DSVMI_BUILD_DIR" >&2
  exit 2
fi
DSVMI_BUILD=$(cd "$1" 2>/dev/null && pwd) || {
  echo "build.sh: dsvmi build dir '$1' does not exist" >&2
  exit 2
}
exec 3>&1 1>&2 # stdout carries only the prefix
CACHE=${DSVMI_CACHE_DIR:-$HOME/.cache/dsvmi}
mkdir -p "$CACHE/src"

# Minimal system emulator for a virtio-blk busybox guest under TCG/KVM, plus
# qemu-img, qemu-io, qemu-nbd and qemu-storage-daemon (--enable-tools).
CONFIGURE_FLAGS=(
  --target-list=x86_64-softmmu --without-default-features
  --enable-kvm --enable-tools --disable-docs --disable-slirp
  --enable-linux-aio --enable-linux-io-uring --enable-fdt=system
)
PATCHES=("$HERE"/[0-9][0-9][0-9][0-9]-*.patch)
ABI_HEADERS=("$ROOT/ringbuf/include/dsvmi/ring.h" "$ROOT/bitmap/include/dsvmi/gate.h")

log() { printf 'qemu-patches/build.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- Debian source package (cached) -------------------------------------
# shellcheck source=../scripts/lib/apt-source.sh
. "$ROOT/scripts/lib/apt-source.sh"

find_dsc() {
  local dscs=()
  shopt -s nullglob
  dscs=("$CACHE"/src/qemu_*.dsc)
  shopt -u nullglob
  ((${#dscs[@]})) || return 0
  printf '%s\n' "${dscs[@]}" | sort -V | tail -1
}
DSC=$(find_dsc)
if [ -z "$DSC" ]; then
  apt_source_ensure_deb_src || die "no deb-src entry for apt-get source"
  log "downloading the qemu source package into $CACHE/src"
  apt_source_download qemu "$CACHE/src" "$CACHE/src/download.log" >/dev/null ||
    die "could not download the qemu source package (log: $CACHE/src/download.log)"
  DSC=$(find_dsc)
  [ -n "$DSC" ] || die "no qemu_*.dsc after download"
fi
DEB_VERSION=$(basename "$DSC" .dsc)
DEB_VERSION=${DEB_VERSION#qemu_}

# --- cache key ------------------------------------------------------------
[ -e "${PATCHES[0]}" ] || die "no patches in $HERE"
# The ABI headers count without their comments and spacing (gcc strips them):
# a reworded comment must not cost a 10-minute rebuild, a changed declaration
# must.
abi_text() { gcc -fpreprocessed -dD -E -P -x c "$1" | tr -s ' \t\n' ' '; }
HASH=$( {
  for f in "${PATCHES[@]}"; do
    printf '%s\n' "$(basename "$f")"
    cat "$f"
  done
  for f in "${ABI_HEADERS[@]}"; do
    printf '%s\n' "$(basename "$f")"
    abi_text "$f" || exit 1
  done
  printf '%s\n' "${CONFIGURE_FLAGS[@]}"
} | sha256sum | cut -c1-16)
[ ${#HASH} -eq 16 ] || die "could not hash the patches and ABI headers"
PREFIX="$CACHE/qemu-$DEB_VERSION-$HASH"
if [ -f "$PREFIX/.dsvmi-complete" ]; then
  log "cache hit: $PREFIX"
  echo "$PREFIX" >&3
  exit 0
fi

# --- build (one at a time on this machine) --------------------------------
PC="$DSVMI_BUILD/lib/pkgconfig/dsvmi-producer.pc"
[ -f "$PC" ] || die "$PC missing: build dsvmi first (the producer library appears once ringbuf/ and bitmap/ build)"
exec 9>"$CACHE/qemu-build.lock"
log "waiting for the build lock ($CACHE/qemu-build.lock)"
flock 9
if [ -f "$PREFIX/.dsvmi-complete" ]; then # someone built it while we waited
  echo "$PREFIX" >&3
  exit 0
fi

WORK="$CACHE/qemu-work-$DEB_VERSION-$HASH"
LOG="$CACHE/qemu-build-$DEB_VERSION-$HASH.log"
: >"$LOG"
fail() {
  log "FAILED: $*; last lines of $LOG:"
  tail -n 40 "$LOG" >&2
  exit 1
}
rm -rf "$WORK" "$PREFIX"
mkdir -p "$WORK"
log "unpacking $(basename "$DSC") (Debian patches applied) into $WORK"
dpkg-source -x "$DSC" "$WORK/src" >>"$LOG" 2>&1 || fail "dpkg-source -x"
for p in "${PATCHES[@]}"; do
  log "applying $(basename "$p")"
  # -F0: no fuzz; a hunk that does not apply exactly fails the build
  patch -d "$WORK/src" -p1 -F0 --batch --forward --no-backup-if-mismatch \
    <"$p" >>"$LOG" 2>&1 || fail "patch $(basename "$p") does not apply to qemu $DEB_VERSION"
done

log "configuring (log: $LOG)"
mkdir -p "$WORK/src/build"
(cd "$WORK/src/build" &&
  PKG_CONFIG_PATH="$DSVMI_BUILD/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
    ../configure --prefix="$PREFIX" "${CONFIGURE_FLAGS[@]}") >>"$LOG" 2>&1 ||
  fail "configure"
# Only the five programs dsvmi uses: QEMU's default target would also build
# its ~700 test objects (a third of the build).
TARGETS=(qemu-system-x86_64 qemu-img qemu-io qemu-nbd storage-daemon/qemu-storage-daemon)
log "building ${TARGETS[*]} with ninja -j${DSVMI_QEMU_JOBS:-$(nproc)} (5-10 minutes on 2 cores)"
ninja -C "$WORK/src/build" -j "${DSVMI_QEMU_JOBS:-$(nproc)}" "${TARGETS[@]}" >>"$LOG" 2>&1 ||
  fail "ninja"
mkdir -p "$PREFIX/bin"
for t in "${TARGETS[@]}"; do
  install -m 0755 "$WORK/src/build/$t" "$PREFIX/bin/" || fail "install $t"
done

# Firmware: the dfsg source ships none. SeaBIOS (package seabios) and the
# option ROMs of qemu-system-data go where the binary looks by default, so a
# busybox guest boots without -L.
mkdir -p "$PREFIX/share/qemu"
for f in /usr/share/seabios/*.bin /usr/share/qemu/*.bin /usr/share/qemu/*.rom; do
  [ -e "$f" ] || continue
  [ -e "$PREFIX/share/qemu/$(basename "$f")" ] || cp -L "$f" "$PREFIX/share/qemu/"
done
[ -f "$PREFIX/share/qemu/bios-256k.bin" ] || fail "bios-256k.bin missing (install seabios)"

printf 'debian %s\nhash %s\npatches %s\n' "$DEB_VERSION" "$HASH" "${PATCHES[*]##*/}" \
  >"$PREFIX/.dsvmi-complete"
[ "${DSVMI_QEMU_KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
log "installed $PREFIX"
echo "$PREFIX" >&3

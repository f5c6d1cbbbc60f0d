#!/usr/bin/env bash
# The README's first command: a demo guest watched live in low-overhead mode.
#   scripts/demo.sh [--seconds N] [--json]
# Installs what it needs, builds dsvmi and (once, cached) the patched QEMU and
# the demo guest (Debian's cloud kernel + a busybox initramfs), makes an ext4
# disk, boots the guest on it, starts `dsvmi daemon` and attaches it to the
# running VM over QMP in low-overhead mode (gate: metadata + /var/log/** data),
# prints the guest's file activity live (`dsvmi watch`), then a summary and a
# live detach.
cd "$(dirname "$0")/.."
. scripts/lib/errexit.sh
ROOT=$PWD
export DSVMI_CACHE_DIR="${DSVMI_CACHE_DIR:-$HOME/.cache/dsvmi}"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

step "packages"
scripts/install-deps.sh >&2

step "building dsvmi (build/)"
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)" >&2

step "patched QEMU (built once into $DSVMI_CACHE_DIR; the first time takes ~6-10 minutes)"
DSVMI_QEMU_PREFIX=$(qemu-patches/build.sh --print-prefix "$ROOT/build")
export DSVMI_QEMU_PREFIX

step "demo guest: Debian cloud kernel + busybox initramfs (cached)"
DSVMI_GUEST_DIR=$(tests/guest/build.sh --print-dir)
export DSVMI_GUEST_DIR

exec /usr/bin/python3 scripts/demo.py --build-dir "$ROOT/build" "$@"

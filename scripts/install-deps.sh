#!/usr/bin/env bash
# Installs every Debian 12 package dsvmi needs to build, test, benchmark and
# run its demo. Idempotent: a second run installs nothing and takes seconds.
. "$(dirname "$0")/lib/errexit.sh"

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev git ca-certificates
  # static checks (.clang-tidy via scripts/clang_tidy.sh; .clang-format)
  clang-tidy clang-format
  # libraries (the project's chosen dependencies)
  liburing-dev libboost-dev libroaring-dev libflatbuffers-dev flatbuffers-compiler
  libgtest-dev libgmock-dev libbenchmark-dev libnbd-dev zlib1g-dev
  # engine sandbox (docs/security.md): seccomp-bpf allow-list
  libseccomp-dev
  # patched QEMU build (qemu-patches/build.sh)
  dpkg-dev meson python3-venv libglib2.0-dev libpixman-1-dev libaio-dev libfdt-dev
  # test guests (Debian cloud kernel + busybox initramfs) and their firmware
  busybox-static cpio seabios qemu-system-data
  # oracles: what is really on a disk
  e2fsprogs fdisk gdisk dosfstools mtools ntfs-3g sleuthkit
  # NTFS: libyal's fsntfsinfo, a third reader independent of TSK and ntfs-3g
  libfsntfs-utils
  # daemon tests: Prometheus' own text-format parser; Debian's stock QEMU (no dsvmi driver)
  python3-prometheus-client qemu-system-x86
  # event stream tests (docs/stream.md): the NATS JetStream broker and C client
  nats-server libnats-dev
  # content hashes of watched files (docs/hashes.md): OpenSSL's SHA-256
  libssl-dev
  # diff oracles: GNU diff and patch (tests/unit/infer/text_diff_test.cc)
  diffutils patch
  # benchmarks
  fio
  # end-to-end benchmarks (bench/e2e): guest root file system, plots
  debootstrap python3-matplotlib
)

# The unprivileged user the engine and crawl children drop to
# (docs/security.md). A system user with no shell and no home.
ensure_sandbox_user() {
  getent passwd dsvmi >/dev/null && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: creating system user dsvmi (engine sandbox)"
  $sudo useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dsvmi
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  ensure_sandbox_user
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
ensure_sandbox_user

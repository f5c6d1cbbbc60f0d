#!/usr/bin/env bash
# The README's test command: from a fresh Debian 12 machine to every test run.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     skip the sanitizer and fuzz builds
# It installs packages, builds dsvmi, builds (or reuses from the cache) the
# patched QEMU and the test guest, then runs: all tests (unit + integration),
# the unit tests under ASan+UBSan, the ring/gate tests under TSan, and a short
# libFuzzer run of every parser.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FAST=0
[ "${1:-}" = "--fast" ] && FAST=1

export DSVMI_CACHE_DIR="${DSVMI_CACHE_DIR:-$HOME/.cache/dsvmi}"
JOBS=$(nproc)
step() { printf '\n==> %s\n' "$*"; }

step "packages"
scripts/install-deps.sh

step "build (warnings are errors)"
cmake -S . -B build -G Ninja -DDSVMI_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"

if [ -x qemu-patches/build.sh ]; then
  step "patched QEMU (cached in $DSVMI_CACHE_DIR)"
  DSVMI_QEMU_PREFIX=$(qemu-patches/build.sh --print-prefix "$ROOT/build")
  export DSVMI_QEMU_PREFIX
fi
if [ -x tests/guest/build.sh ]; then
  step "test guest (cached in $DSVMI_CACHE_DIR)"
  DSVMI_GUEST_DIR=$(tests/guest/build.sh --print-dir)
  export DSVMI_GUEST_DIR
fi

step "tests"
ctest --test-dir build --output-on-failure -j "$JOBS"

if [ "$FAST" = 0 ]; then
  step "unit tests under ASan+UBSan"
  cmake -S . -B build-asan -G Ninja -DDSVMI_WERROR=ON -DDSVMI_BENCH=OFF \
    -DDSVMI_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-asan -j "$JOBS"
  # The crawler's 15 mkfs variants take ~2 min natively and far longer under
  # ASan: here a representative third of them (journal/no journal, 1 KiB and
  # 64 KiB blocks, inline data, meta_bg, ext3 indirect maps) plus the
  # partitioned and damaged images.
  ctest --test-dir build-asan --output-on-failure -j "$JOBS" -L unit -E '^ext4_crawl_test$'
  build-asan/tests/ext4_crawl_test --gtest_filter='*/default:*/no_journal:*/block1k:*/inline_data:*/meta_bg:*/ext3:Ext4CrawlPartitioned.*'

  step "concurrency tests under TSan"
  cmake -S . -B build-tsan -G Ninja -DDSVMI_WERROR=ON -DDSVMI_BENCH=OFF \
    -DDSVMI_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-tsan -j "$JOBS"
  ctest --test-dir build-tsan --output-on-failure -L tsan

  step "fuzz smoke (libFuzzer, clang)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DDSVMI_FUZZ=ON -DDSVMI_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz -j "$JOBS"
  ctest --test-dir build-fuzz --output-on-failure -L fuzz
fi
step "all tests passed"

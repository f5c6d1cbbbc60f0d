#!/usr/bin/env bash
# The README's test command: from a fresh Debian 12 machine to every test run.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     skip the sanitizer builds and the fuzz run
# It installs packages, builds dsvmi, builds (or reuses from the cache) the
# patched QEMU and the test guest, then runs: all tests (unit + integration),
# the unit tests under ASan+UBSan (clang), the ring/gate tests under TSan,
# and a short libFuzzer run of every parser (from the same clang tree).
cd "$(dirname "$0")/.."
. scripts/lib/errexit.sh
ROOT=$PWD
FAST=0
[ "${1:-}" = "--fast" ] && FAST=1

export DSVMI_CACHE_DIR="${DSVMI_CACHE_DIR:-$HOME/.cache/dsvmi}"
JOBS=$(nproc)
T0=$(date +%s)
RESULTS=$ROOT/build/test-results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
# ctest with a JUnit record per run, so the closing line can count every
# test of every run (unit, integration, sanitizers, fuzz).
run_ctest() { # $1: a name for this run; the rest: ctest arguments
  local name=$1
  shift
  ctest --output-junit "$RESULTS/$name.xml" "$@"
}
step() { printf '\n==> [%4d s] %s\n' "$(($(date +%s) - T0))" "$*"; }

step "packages"
scripts/install-deps.sh

step "build (warnings are errors)"
cmake -S . -B build -G Ninja -DDSVMI_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"

step "clang-tidy (.clang-tidy; findings are errors)"
scripts/clang_tidy.sh build

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

if [ -x bench/e2e/rootfs.sh ] && [ "$(id -u)" -eq 0 ]; then
  # Built here, not inside the bench smoke test, so a cold cache's longest
  # download (debootstrap) is its own step with its own error.
  step "benchmark guest root file system (cached in $DSVMI_CACHE_DIR)"
  bench/e2e/rootfs.sh --print-image
fi

step "tests"
run_ctest main --test-dir build --output-on-failure -j "$JOBS"

if [ "$FAST" = 0 ]; then
  # One clang tree serves the unit tests under ASan+UBSan and the libFuzzer
  # targets (everything in it is instrumented for both): one sanitizer build
  # instead of two.
  step "sanitizer build (clang: ASan+UBSan, libFuzzer targets)"
  CC=clang CXX=clang++ cmake -S . -B build-san -G Ninja -DDSVMI_FUZZ=ON -DDSVMI_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-san -j "$JOBS"

  step "unit tests under ASan+UBSan"
  # The crawler's 15 mkfs variants take ~2 min natively and far longer under
  # ASan: here a representative third of them (journal/no journal, 1 KiB and
  # 64 KiB blocks, inline data, meta_bg, ext3 indirect maps) plus the
  # partitioned and damaged images.
  run_ctest asan --test-dir build-san --output-on-failure -j "$JOBS" -L unit -E '^ext4_crawl_test$'
  build-san/tests/ext4_crawl_test --gtest_filter='*/default:*/no_journal:*/block1k:*/inline_data:*/meta_bg:*/ext3:Ext4CrawlPartitioned.*'

  step "concurrency tests under TSan"
  cmake -S . -B build-tsan -G Ninja -DDSVMI_WERROR=ON -DDSVMI_BENCH=OFF \
    -DDSVMI_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-tsan -j "$JOBS"
  run_ctest tsan --test-dir build-tsan --output-on-failure -L tsan

  step "fuzz smoke (libFuzzer, clang)"
  run_ctest fuzz --test-dir build-san --output-on-failure -j "$JOBS" -L fuzz
fi
step "all tests passed"
# The closing line: every test of every ctest run above (a failing run has
# already ended the script with its own summary).
python3 - "$RESULTS" <<'PY'
import pathlib, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for case in ET.parse(f).getroot().iter("testcase"):
        status = case.get("status", "run")
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None or status in ("notrun", "disabled"):
            skipped += 1
        else:
            passed += 1
print(f"all: {passed} passed, {failed} failed, {skipped} skipped")
PY

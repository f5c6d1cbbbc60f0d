#!/usr/bin/env bash
# What an idle ring consumer costs (docs/ring.md, "Doorbell"): runs a consumer
# on a fresh 64 MiB ring nobody writes to and reports, over SECONDS (default
# 10), its CPU time (utime+stime from /proc/PID/stat in clock ticks, and the
# nanoseconds on CPU from /proc/PID/schedstat) and its voluntary context
# switches (= futex wake-ups).
#
#   bench/ring_idle_cpu.sh [--capture] [BUILD_DIR] [SECONDS]
#
# Default consumer: `qemu_ring_tool ring-drain` (Wait(50 ms) in a loop);
# --capture: `dsvmi capture` (Wait(100 ms), the same loop shape as dsvmi run).
set -euo pipefail
mode=drain
if [[ "${1:-}" == --capture ]]; then mode=capture; shift; fi
build=$(cd "${1:-build}" && pwd)
secs=${2:-10}
export LD_LIBRARY_PATH=$build/lib
ring=/dev/shm/dsvmi-idle-cpu-$$.ring
trace=/tmp/dsvmi-idle-cpu-$$.trace
trap 'rm -f "$ring" "$trace"' EXIT
if [[ $mode == drain ]]; then
  "$build/tests/qemu_ring_tool" ring-create "$ring" 67108864 >/dev/null
  "$build/tests/qemu_ring_tool" ring-drain "$ring" $((secs + 3)) >/dev/null &
else
  "$build/dsvmi" capture --ring "$ring" --out "$trace" 2>/dev/null &
fi
pid=$!
sleep 1  # past start-up
sample() {
  awk '{print $14 + $15}' "/proc/$pid/stat"
  awk '{print $1}' "/proc/$pid/schedstat"
  awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$pid/status"
}
before=($(sample))
sleep "$secs"
after=($(sample))
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
ticks=$((after[0] - before[0]))
ms=$(((after[1] - before[1]) / 1000000))
wakes=$((after[2] - before[2]))
echo "$mode $build: ${secs}s idle: $ticks clock ticks (CLK_TCK $(getconf CLK_TCK)), ${ms} ms on CPU" \
     "($(awk -v m="$ms" -v s="$secs" 'BEGIN {printf "%.2f", m / (s * 10)}')% of a core), $wakes wake-ups"

#!/usr/bin/python3
"""dsvmi's end-to-end overhead benchmarks (docs/benchmarks.md).

    bench/e2e/run.py --build-dir build [--quick] [--micro] [--out DIR]
    build/dsvmi bench [--quick] [--micro] [--out DIR]        (same thing)

Boots a Debian 12 guest (bench/e2e/rootfs.sh, cached) under the patched QEMU
and runs the seed's workloads (Modified-Andrew-like phases, PostMark,
bonnie++, a software install; bench/e2e/workloads.py) in four modes,
interleaved over repetitions (each repetition runs every mode, in a rotated
order):
  none          no filter (the baseline)
  full          filter, no gate: every write is copied, a consumer drains
  low-overhead  filter + gate passing metadata and /var/log/** data
  drop-all      filter attached with a drop-all gate (silent)
Each boot uses a fresh copy of the pristine image. The host timestamps the
phase markers the guest prints on its serial console. Each workload's time is
reported as a ratio to `none` from the same repetition (median, min..max).
Also folds in the block-layer-only numbers (bench/qemu_bench.py) and, with
--micro, the Google Benchmark binaries (build/bench/bench_*).

Writes DIR/results.json, DIR/results.md, DIR/overhead.png,
DIR/timeseries-bonnie.png. Needs DSVMI_QEMU_PREFIX / DSVMI_GUEST_DIR /
DSVMI_CACHE_DIR (scripts/test.sh exports them), or builds/reuses them through
qemu-patches/build.sh and tests/guest/build.sh when unset.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration" / "lib"))
sys.path.insert(0, str(HERE))
import guest as guestlib  # noqa: E402  (tests/integration/lib/guest.py)
import report  # noqa: E402
import workloads as wl  # noqa: E402

MODES = ["none", "full", "low-overhead", "drop-all"]
LOW_OVERHEAD_GLOBS = ["/var/log/**"]
RING_CAPACITY = "64M"
SAMPLE_PERIOD = 0.5  # seconds between ring/RSS samples
PHASE_RE = re.compile(r"^DSVMI-PHASE-(BEGIN|END) (\S+) (\d+) ([0-9.]+)")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# -- environment -------------------------------------------------------------


def resolve_env(build_dir):
    """DSVMI_QEMU_PREFIX / DSVMI_GUEST_DIR / DSVMI_CACHE_DIR from the
    environment, else from the cached build scripts (which build on a miss)."""
    os.environ.setdefault("DSVMI_CACHE_DIR", str(Path.home() / ".cache" / "dsvmi"))
    if not os.environ.get("DSVMI_QEMU_PREFIX"):
        log("DSVMI_QEMU_PREFIX unset: qemu-patches/build.sh --print-prefix (cached)")
        os.environ["DSVMI_QEMU_PREFIX"] = subprocess.run(
            [str(ROOT / "qemu-patches" / "build.sh"), "--print-prefix", str(build_dir)],
            check=True, capture_output=True, text=True).stdout.strip()
    if not os.environ.get("DSVMI_GUEST_DIR"):
        log("DSVMI_GUEST_DIR unset: tests/guest/build.sh --print-dir (cached)")
        os.environ["DSVMI_GUEST_DIR"] = subprocess.run(
            [str(ROOT / "tests" / "guest" / "build.sh"), "--print-dir"],
            check=True, capture_output=True, text=True).stdout.strip()
    return guestlib.Env.from_environment(build_dir)


def rootfs_image():
    log("guest root file system: bench/e2e/rootfs.sh (cached; first build 5-15 min)")
    p = subprocess.run([str(HERE / "rootfs.sh"), "--print-image"], capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"bench/e2e/rootfs.sh failed:\n{p.stderr[-3000:]}")
    img = Path(p.stdout.strip().splitlines()[-1])
    recipe = (img.parent / "recipe.txt").read_text()
    return img, recipe


class BenchGuest(guestlib.Guest):
    """guestlib.Guest with a chosen accelerator (it hard-codes TCG)."""

    def __init__(self, *a, accel="tcg", **kw):
        super().__init__(*a, **kw)
        self.accel = accel

    def command(self):
        cmd = super().command()
        i = cmd.index("-accel")
        cmd[i + 1] = self.accel
        if self.accel == "kvm":
            cmd[i + 2:i + 2] = ["-cpu", "host"]
        return cmd


def probe_kvm(env, work):
    """'kvm' if /dev/kvm exists and a test guest boots with it, else 'tcg',
    with the reason."""
    if not os.path.exists("/dev/kvm"):
        return "tcg", "/dev/kvm absent"
    d = work / "kvm-probe"
    d.mkdir(parents=True, exist_ok=True)
    img = guestlib.make_ext4(d / "probe.img", 16)
    g = BenchGuest(env, d, "echo DSVMI-KVM-PROBE", guestlib.DiskChain(img), memory_mib=128,
                   accel="kvm")
    g.start()
    try:
        g.wait(timeout=30)
        return "kvm", "/dev/kvm present; probe guest booted"
    except guestlib.GuestError as e:
        why = str(e).splitlines()[0]
        return "tcg", f"/dev/kvm present but a probe guest failed under KVM: {why}"
    finally:
        g.kill()
        shutil.rmtree(d, ignore_errors=True)


# -- per-boot instruments ------------------------------------------------------


def _stat_json(env, command, path):
    """`dsvmi ring-stat|gate-stat --json PATH` (docs/cli-json.md); {} if unreadable."""
    p = subprocess.run([env.dsvmi(), command, "--json", str(path)], capture_output=True, text=True)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {}


def ring_stat(env, ring):
    r = _stat_json(env, "ring-stat", ring)
    if not r.get("valid"):
        return {}
    s = {k: r[k] for k in ("capacity", "produced_frames", "produced_bytes", "dropped_frames", "dropped_bytes")}
    s["fill"] = r["fill_bytes"]
    return s


def gate_stat(env, gate):
    g = _stat_json(env, "gate-stat", gate)
    s = {k: g[k] for k in ("writes_passed", "bytes_passed", "writes_dropped", "bytes_dropped", "fallbacks") if k in g}
    s["raw"] = g
    return s


def proc_status(pid):
    """VmRSS and VmHWM (KiB) of a live process, or {}."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM|RssAnon|RssShmem):\s+(\d+) kB", text, re.M)}


class Consumer:
    """The process draining the ring: `dsvmi run` (the inference engine) or,
    where it is unavailable, `dsvmi capture` into a scratch trace file. It
    creates the ring before start() returns, so QEMU can open it."""

    def __init__(self, env, kind, ring, workdir, index=None, disk=None, policies=(), gate=None):
        self.env = env
        self.kind = kind
        self.log_path = Path(workdir) / "consumer.log"
        self.events_path = Path(workdir) / "events.jsonl"
        self.stats_path = Path(workdir) / "consumer-stats.json"
        if kind == "run":
            # Engine records on the event stream give the ready record; the
            # final counters go to --stats-json (docs/cli-json.md).
            self.argv = [env.dsvmi(), "run", "--ring", str(ring), "--index", str(index),
                         "--disk", str(disk), "--events", str(self.events_path), "--records",
                         "--stats-json", str(self.stats_path)]
            for p in policies:
                self.argv += ["--policy", p]
            if gate:
                self.argv += ["--gate", str(gate)]
            self.records_path, self.key = self.events_path, "engine"
        else:
            self.argv = [env.dsvmi(), "capture", "--json", "--ring", str(ring), "--out",
                         str(Path(workdir) / "capture.trace"), "--capacity", RING_CAPACITY]
            self.records_path, self.key = Path(workdir) / "capture.jsonl", "capture"
        self.proc = None

    def describe(self):
        return " ".join(Path(a).name if a.startswith("/") else a for a in self.argv[1:])

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def record(self, kind):
        """The last complete {self.key: kind} record (`dsvmi run` engine
        records, docs/events.md; `dsvmi capture --json`, docs/cli-json.md)."""
        found = None
        try:
            with open(self.records_path, "r", errors="replace") as f:
                for line in f:
                    if line.endswith("\n") and f'"{self.key}"' in line:
                        r = json.loads(line)
                        if r.get(self.key) == kind:
                            found = r
        except FileNotFoundError:
            pass
        return found

    def start(self, timeout=120.0):
        self._log = open(self.log_path, "w")
        self._out = open(self.records_path if self.kind == "capture" else os.devnull, "w")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._log)
        deadline = time.monotonic() + timeout
        while not self.record("ready"):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.describe()} exited {self.proc.returncode}: {self.log()[-2000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise BenchError(f"{self.describe()} not ready in {timeout} s: {self.log()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self, timeout=300.0):
        """SIGTERM (both drain what is enqueued, then exit); returns the
        final counters (the stats record of docs/cli-json.md) and, for the
        engine, the number of event lines written."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{self.describe()} ignored SIGTERM for {timeout} s")
        finally:
            self._log.close()
            self._out.close()
        if rc != 0:
            raise BenchError(f"{self.describe()} exited {rc}: {self.log()[-2000:]}")
        if self.kind == "run":
            stats = json.loads(self.stats_path.read_text())
            with open(self.events_path, "rb") as f:
                stats["event_lines"] = sum(1 for line in f if b'"engine"' not in line)
        else:
            stats = self.record("stats")
            if not stats:
                raise BenchError(f"{self.describe()} printed no stats record: {self.log()[-2000:]}")
        return stats

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ConsoleWatcher:
    """Reads the serial console file as QEMU writes it and timestamps each
    complete line with the host's monotonic clock."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.partial = ""
        self.lines = []  # (host time, line)

    def poll(self):
        try:
            with open(self.path, "r", errors="replace") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except FileNotFoundError:
            return []
        now = time.monotonic()
        data = self.partial + data
        *complete, self.partial = data.split("\n")
        new = [(now, line.rstrip("\r")) for line in complete]
        self.lines.extend(new)
        return new


# -- one boot ------------------------------------------------------------------


class Runner:
    def __init__(self, args, env, pristine, accel, work):
        self.args = args
        self.env = env
        self.pristine = pristine
        self.accel = accel
        self.work = work
        self.disk_size = pristine.stat().st_size
        self.script = wl.guest_script(args.workloads, args.size, args.install_set)
        self.static_gate = None

    def prepare(self):
        """Crawls the pristine image once (the index every engine starts
        from) and, for the capture consumer, derives the static low-overhead
        gate from it."""
        gate = self.work / "low-overhead.gate.pristine"
        self.index = self.work / "pristine.index"
        cmd = [self.env.dsvmi(), "bench", "static-gate", "--json", "--disk", str(self.pristine),
               "--gate", str(gate), "--index", str(self.index)]
        for g in LOW_OVERHEAD_GLOBS:
            cmd += ["--glob", g]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed: {p.stderr}")
        self.static_gate = gate
        self.static_gate_info = json.loads(p.stdout)  # docs/cli-json.md, `dsvmi bench static-gate --json`
        log(f"crawled the pristine image; static low-overhead gate: {p.stdout.strip()}")
        self.consumer_kinds = {}

    def consumer_for(self, mode, ring, gate, img, d):
        kind = self.args.consumer
        if kind == "run":
            policies = {"full": ["pass-all"], "low-overhead": ["glob:" + g for g in LOW_OVERHEAD_GLOBS],
                        "drop-all": ["metadata"]}[mode]
            c = Consumer(self.env, "run", ring, d, index=self.index, disk=img, policies=policies,
                         gate=gate if mode == "low-overhead" else None)
        else:
            c = Consumer(self.env, "capture", ring, d)
        self.consumer_kinds[mode] = c.describe()
        return c

    def boot(self, mode, rep):
        d = self.work / f"rep{rep}-{mode}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        img = d / "disk.img"
        subprocess.run(["cp", "--sparse=always", str(self.pristine), str(img)], check=True)
        ring = gate = None
        consumer = None
        dsvmi_opts = None
        shm = Path("/dev/shm")
        tag = f"dsvmi-bench-{os.getpid()}-{rep}-{mode}"
        if mode != "none":
            ring = shm / f"{tag}.ring"
            if mode == "drop-all":
                gate = shm / f"{tag}.gate"
                guestlib.run([self.env.dsvmi(), "gate-create", gate, "--disk-size",
                              self.disk_size, "--mode", "drop-all"])
            elif mode == "low-overhead":
                # Starts as the crawl's static gate (metadata + globs); `dsvmi
                # run --gate` keeps it in step as the file system changes.
                gate = shm / f"{tag}.gate"
                shutil.copyfile(self.static_gate, gate)
            consumer = self.consumer_for(mode, ring, gate, img, d)
            consumer.start()
            dsvmi_opts = {"ring": str(ring)}
            if gate:
                dsvmi_opts["gate"] = str(gate)
        chain = guestlib.DiskChain(img, fmt="raw", dsvmi=dsvmi_opts)
        g = BenchGuest(self.env, d, self.script, chain, memory_mib=self.args.guest_mib,
                       accel=self.accel)
        record = {"mode": mode, "rep": rep, "phases": {}, "samples": [], "marks": []}
        watcher = ConsoleWatcher(g.console_path)
        begins = {}
        try:
            t0 = time.monotonic()
            g.start()
            next_sample = t0
            while True:
                for t, line in watcher.poll():
                    m = PHASE_RE.match(line)
                    if not m:
                        continue
                    kind, phase, sectors, uptime = m.group(1), m.group(2), int(m.group(3)), float(m.group(4))
                    mark = {"t": t - t0, "kind": kind, "phase": phase, "sectors": sectors,
                            "guest_uptime": uptime}
                    if ring:
                        mark["ring"] = ring_stat(self.env, ring)
                    if gate:
                        mark["gate"] = gate_stat(self.env, gate)
                    record["marks"].append(mark)
                    if kind == "BEGIN":
                        begins[phase] = mark
                    elif phase in begins:
                        b = begins.pop(phase)
                        ph = {"seconds": mark["t"] - b["t"],
                              "guest_seconds": mark["guest_uptime"] - b["guest_uptime"],
                              "bytes_written": (mark["sectors"] - b["sectors"]) * 512}
                        if ring:
                            ph["ring_bytes"] = mark["ring"].get("produced_bytes", 0) - \
                                b["ring"].get("produced_bytes", 0)
                            ph["ring_dropped_frames"] = mark["ring"].get("dropped_frames", 0) - \
                                b["ring"].get("dropped_frames", 0)
                        record["phases"][phase] = ph
                now = time.monotonic()
                if now >= next_sample:
                    s = {"t": now - t0}
                    if ring:
                        rs = ring_stat(self.env, ring)
                        s["ring_fill"] = rs.get("fill")
                        s["ring_capacity"] = rs.get("capacity")
                        s["ring_produced_bytes"] = rs.get("produced_bytes")
                    if consumer:
                        ps = proc_status(consumer.proc.pid)
                        s["consumer_rss_kib"] = ps.get("VmRSS")
                        s["consumer_anon_kib"] = ps.get("RssAnon")
                        s["consumer_shmem_kib"] = ps.get("RssShmem")
                    s["qemu_rss_kib"] = proc_status(g.proc.pid).get("VmRSS")
                    record["samples"].append(s)
                    next_sample = now + SAMPLE_PERIOD
                if g.proc.poll() is not None:
                    break
                if now - t0 > self.args.boot_timeout:
                    raise guestlib.GuestError(f"boot {rep}/{mode} exceeded {self.args.boot_timeout} s")
                time.sleep(0.02)
            watcher.poll()
            g.wait(timeout=10)  # checks exit code, WORKLOAD-OK and I/O errors
            record["wall_seconds"] = time.monotonic() - t0
            record["guest_out"] = [l for _, l in watcher.lines if l.startswith("DSVMI-OUT ")]
            if consumer:
                record["consumer_hwm_kib"] = proc_status(consumer.proc.pid).get("VmHWM")
            if ring:
                record["ring_final"] = ring_stat(self.env, ring)
            if gate:
                record["gate_final"] = gate_stat(self.env, gate)
            if consumer:
                record["consumer_stats"] = consumer.stop()
                consumer = None
            missing = [p for p in self.expected_phases() if p not in record["phases"]]
            if missing:
                raise BenchError(f"boot {rep}/{mode}: phases never finished: {missing}")
        finally:
            g.kill()
            if consumer:
                consumer.kill()
            for f in (ring, gate):
                if f and Path(f).exists():
                    Path(f).unlink()
            if img.exists():
                img.unlink()
        return record

    def expected_phases(self):
        return [m.group(1) for m in re.finditer(r"^begin (\S+)$", self.script, re.M)]


# -- block layer and micro benchmarks --------------------------------------------


def run_block_layer(args, env):
    cmd = [sys.executable, str(ROOT / "bench" / "qemu_bench.py"), "--build-dir", str(args.build_dir),
           "--reps", str(max(5, args.block_reps)), "--seconds", str(args.block_seconds),
           "--size-mib", str(args.block_size_mib), "--work-dir", str(args.work_dir)]
    for c in args.block_configs:
        cmd += ["--config", c]
    log("block layer: " + " ".join(cmd[1:]))
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if p.returncode != 0:
        return {"command": " ".join(cmd[1:]), "error": p.stderr[-2000:]}
    # Keep qemu_bench.py's own table (its format is its own); rows = the
    # table's cells, for machine readers.
    rows = []
    for line in p.stdout.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return {"command": "bench/qemu_bench.py " + " ".join(cmd[3:]).replace(str(ROOT) + "/", ""),
            "markdown": p.stdout.strip(), "rows": rows}


def run_micro(args):
    out = {}
    for b in sorted((args.build_dir / "bench").glob("bench_*")):
        if not os.access(b, os.X_OK) or b.suffix:
            continue
        cmd = [str(b), "--benchmark_format=json", f"--benchmark_min_time={args.micro_min_time}"]
        log("micro: " + " ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            out[b.name] = {"error": p.stderr[-2000:]}
            continue
        if not p.stdout.strip():  # registered nothing (bench_crawl without DSVMI_CRAWL_IMAGES)
            # One line: the reason goes into a Markdown table cell.
            why = " ".join(p.stderr.split())[-300:]
            out[b.name] = {"skipped": why or "no benchmarks registered"}
            continue
        try:
            out[b.name] = json.loads(p.stdout)
        except json.JSONDecodeError as e:
            out[b.name] = {"error": f"bad JSON: {e}"}
    return out


# -- aggregation -----------------------------------------------------------------


def aggregate(boots, modes, workloads, expected):
    """Per workload and mode: time per repetition (sum of its phases), ratio
    to `none` from the same repetition, median and min..max."""
    by = {(b["mode"], b["rep"]): b for b in boots}
    reps = sorted({b["rep"] for b in boots})
    table = {}
    for w in workloads:
        phases = [p for p in expected if p.startswith(w + ".")]
        row = {}
        for mode in modes:
            times, ratios, written, ringb, drops = [], [], [], [], []
            for r in reps:
                b = by.get((mode, r))
                if not b:
                    continue
                t = sum(b["phases"][p]["seconds"] for p in phases)
                times.append(t)
                written.append(sum(b["phases"][p]["bytes_written"] for p in phases))
                ringb.append(sum(b["phases"][p].get("ring_bytes", 0) for p in phases))
                drops.append(sum(b["phases"][p].get("ring_dropped_frames", 0) for p in phases))
                base = by.get(("none", r))
                if base:
                    tb = sum(base["phases"][p]["seconds"] for p in phases)
                    ratios.append(t / tb if tb > 0 else float("nan"))
            row[mode] = {
                "seconds": times,
                "seconds_median": statistics.median(times) if times else None,
                "ratio": ratios,
                "ratio_median": statistics.median(ratios) if ratios else None,
                "ratio_min": min(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "bytes_written_median": statistics.median(written) if written else None,
                "ring_bytes_median": statistics.median(ringb) if ringb else None,
                "ring_dropped_frames": sum(drops),
            }
        table[w] = row
    return table


def engine_memory(boots, modes):
    out = {}
    for mode in modes:
        hwm = [b["consumer_hwm_kib"] for b in boots if b["mode"] == mode and b.get("consumer_hwm_kib")]
        anon = [s.get("consumer_anon_kib") or 0 for b in boots if b["mode"] == mode for s in b["samples"]]
        shmem = [s.get("consumer_shmem_kib") or 0 for b in boots if b["mode"] == mode for s in b["samples"]]
        if hwm:
            out[mode] = {"peak_rss_kib_max": max(hwm), "peak_rss_kib_median": statistics.median(hwm),
                         "peak_anon_kib_sampled": max(anon) if anon else None,
                         "peak_shmem_kib_sampled": max(shmem) if shmem else None}
    return out


def event_latency(boots, modes):
    """Per mode, from the engine's final counters (`dsvmi run --stats-json`:
    event_latency_us {p50, p99, max}, emission time minus the
    timestamp QEMU put on the frame that made the change visible): the
    median and the worst over repetitions. None when no engine reported it."""
    out = {}
    for mode in modes:
        rows = [b.get("consumer_stats") or {} for b in boots if b["mode"] == mode]
        rows = [r for r in rows if "event_latency_us" in r and r.get("events")]
        if not rows:
            continue
        p50 = [r["event_latency_us"]["p50"] / 1000 for r in rows]
        p99 = [r["event_latency_us"]["p99"] / 1000 for r in rows]
        mx = [r["event_latency_us"]["max"] / 1000 for r in rows]
        out[mode] = {"p50_ms": round(statistics.median(p50), 3), "p99_ms": round(statistics.median(p99), 3),
                     "p99_ms_worst": round(max(p99), 3), "max_ms": round(max(mx), 3),
                     "events": sum(r["events"] for r in rows), "boots": len(rows)}
    return out or None


def machine_info(accel, accel_reason):
    load = os.getloadavg()
    kernel = platform.release()
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "host_kernel": kernel,
            "accel": accel, "accel_reason": accel_reason,
            "loadavg_start": load, "date": datetime.datetime.now().isoformat(timespec="seconds")}


# -- main ------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--build-dir", required=True, type=Path)
    ap.add_argument("--out", type=Path, help="results directory (default BUILD/results/bench-<time>)")
    ap.add_argument("--quick", action="store_true", help="scaled-down workloads, 2 repetitions")
    ap.add_argument("--tiny", action="store_true", help="smallest sizes (the smoke test)")
    ap.add_argument("--micro", action="store_true", help="also run build/bench/bench_* (Google Benchmark)")
    ap.add_argument("--reps", type=int, help="repetitions (default 2 quick, 3 full)")
    ap.add_argument("--workloads", default=",".join(wl.WORKLOADS),
                    help="comma list of " + ",".join(wl.WORKLOADS))
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of " + ",".join(MODES))
    ap.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    ap.add_argument("--consumer", choices=["auto", "run", "capture"], default="auto",
                    help="ring consumer: dsvmi run (the engine) or dsvmi capture (auto: run if present)")
    ap.add_argument("--install-set", choices=["quick", "full"],
                    help="package set of the install workload (default: quick at every size; full = "
                         "apache2, php, git: ~6 min per boot under TCG)")
    ap.add_argument("--guest-mib", type=int, default=512)
    ap.add_argument("--boot-timeout", type=float, help="seconds per boot (default by size)")
    ap.add_argument("--no-block-layer", action="store_true", help="skip bench/qemu_bench.py")
    ap.add_argument("--block-reps", type=int, help="qemu_bench.py repetitions (default 5 quick, 15 full)")
    ap.add_argument("--work-dir", type=Path, help="scratch space on disk (default OUT/work)")
    ap.add_argument("--keep-work", action="store_true")
    ap.add_argument("--micro-min-time", default="0.2")
    args = ap.parse_args(argv)
    args.build_dir = args.build_dir.resolve()
    args.size = "tiny" if args.tiny else "quick" if args.quick else "full"
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.modes = [m for m in args.modes.split(",") if m]
    for w in args.workloads:
        if w not in wl.WORKLOADS:
            ap.error(f"unknown workload '{w}'")
    for m in args.modes:
        if m not in MODES:
            ap.error(f"unknown mode '{m}'")
    if "none" not in args.modes:
        ap.error("the modes must include 'none' (the baseline of every ratio)")
    if args.reps is None:
        args.reps = 1 if args.tiny else 2 if args.quick else 3
    if args.boot_timeout is None:
        args.boot_timeout = {"tiny": 900, "quick": 1200, "full": 3600}[args.size]
    if args.out is None:
        args.out = args.build_dir / "results" / ("bench-" + time.strftime("%Y%m%d-%H%M%S"))
    args.out = args.out.resolve()
    if args.work_dir is None:
        args.work_dir = args.out / "work"
    quick = args.size != "full"
    args.block_reps = args.block_reps or (5 if quick else 15)
    args.block_seconds = 0.5 if quick else 1.0
    args.block_size_mib = 256 if quick else 1024
    args.block_configs = ["O_DIRECT native", "null-co 4"] if quick else []
    return args


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    env = resolve_env(args.build_dir)
    pristine, recipe = rootfs_image()
    if args.accel == "auto":
        accel, reason = probe_kvm(env, args.work_dir)
    else:
        accel, reason = args.accel, "chosen with --accel"
    log(f"accelerator: {accel} ({reason})")
    if args.consumer == "auto":
        ok = subprocess.run([env.dsvmi(), "run", "--help"], capture_output=True).returncode == 0
        args.consumer = "run" if ok else "capture"
    log(f"consumer: dsvmi {args.consumer}")
    machine = machine_info(accel, reason)
    runner = Runner(args, env, pristine, accel, args.work_dir)
    runner.prepare()
    boots = []
    started = time.monotonic()
    for rep in range(args.reps):
        k = rep % len(args.modes)
        for mode in args.modes[k:] + args.modes[:k]:
            log(f"rep {rep + 1}/{args.reps} mode {mode}: booting ({args.size} workloads "
                f"{','.join(args.workloads)})")
            b = runner.boot(mode, rep)
            boots.append(b)
            log(f"rep {rep + 1}/{args.reps} mode {mode}: " + ", ".join(
                f"{p} {v['seconds']:.1f}s" for p, v in b["phases"].items()))
    suite_seconds = time.monotonic() - started
    expected = runner.expected_phases()
    results = {
        "command": " ".join(["dsvmi bench"] + (sys.argv[1:] if argv is None else argv)),
        "size": args.size, "reps": args.reps, "modes": args.modes, "workloads": args.workloads,
        "machine": machine, "loadavg_end": os.getloadavg(), "suite_seconds": suite_seconds,
        "guest": {"memory_mib": args.guest_mib, "recipe": recipe.splitlines()[:6],
                  "kernel": (env.guest_dir / "kernel.txt").read_text().strip(),
                  "sizes": wl.sizes(args.workloads, args.size, args.install_set)},
        "consumers": runner.consumer_kinds,
        "low_overhead_gate": getattr(runner, "static_gate_info", None),
        "low_overhead_globs": LOW_OVERHEAD_GLOBS,
        "phases": expected,
        "table": aggregate(boots, args.modes, args.workloads, expected),
        "engine_memory": engine_memory(boots, args.modes),
        "event_latency": event_latency(boots, args.modes),
        "boots": boots,
    }
    if not args.no_block_layer:
        results["block_layer"] = run_block_layer(args, env)
    if args.micro:
        results["micro"] = run_micro(args)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True))
    report.write(results, args.out)
    if not args.keep_work:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    print((args.out / "results.md").read_text())
    log(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, guestlib.GuestError, guestlib.EnvError, RuntimeError) as e:
        print(f"dsvmi bench: {e}", file=sys.stderr)
        sys.exit(1)

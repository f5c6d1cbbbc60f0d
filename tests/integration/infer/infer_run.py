"""Runs a guest workload behind the dsvmi filter and the engine over it, in
the two modes of the inference tests:
  full  pass-all capture into a trace (dsvmi capture), then `dsvmi run
        --trace` over it with the original image as the disk;
  low   low-overhead: a gate (metadata + data of `watch`) built by
        `dsvmi crawl --gate`, `dsvmi run --ring --gate` live beside the guest
        with the live disk.
Both return the engine's output for the checks of the calling test."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import guest


@dataclass
class EngineRun:
    events: Path        # JSON Lines events
    state: str          # --state output
    stats: dict         # the --stats-json record (docs/cli-json.md)
    gate_stat: dict = None  # low mode: `dsvmi gate-stat --json` of the gate after the run (docs/cli-json.md)


def engine_ready(events):
    """True once `dsvmi run --records` wrote its ready record (docs/events.md,
    "Engine records"): the ring exists and the engine drains it."""
    try:
        lines = events.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return False
    return any(l.endswith("\n") and json.loads(l).get("engine") == "ready" for l in lines)


def run_full(env, work, workload, original, disk, ring_name, guest_timeout=600, extra_append=""):
    index = work / "original.dsvx"
    ring = guest.shm_ring_path(ring_name)
    guest.run([env.dsvmi(), "crawl", original, "--index", index])
    trace = work / "capture.trace"
    capture = guest.Capture(env, ring, trace, capacity="64M").start()
    vm = guest.Guest(env, work, workload, guest.DiskChain(disk, dsvmi={"ring": str(ring)}),
                     extra_append=extra_append)
    try:
        vm.start()
        vm.wait(timeout=guest_timeout)
    finally:
        vm.kill()
        cstats = capture.stop()
    assert cstats["lost_records"] == 0, f"capture lost frames: {cstats}"
    events, stats = work / "events.jsonl", work / "stats.json"
    r = guest.run([env.dsvmi(), "run", "--trace", trace, "--index", index, "--disk", original,
                   "--events", events, "--data", "--state", "--stats", "--stats-json", stats,
                   "--pending-max", "256M"])
    (work / "state.jsonl").write_text(r.stdout)
    sys.stderr.write(r.stderr[-2000:])
    return EngineRun(events, r.stdout, json.loads(stats.read_text()))


def run_low(env, work, workload, original, disk, ring_name, watch, guest_timeout=600, extra_append="",
            hash_globs=(), run_args=()):
    """hash_globs: `dsvmi run --hash` (hashed files are watched: their globs
    join the crawl's gate); run_args: more `dsvmi run` arguments."""
    index = work / "original.dsvx"
    ring = guest.shm_ring_path(ring_name)
    gate = Path("/dev/shm") / f"dsvmi-test-{ring_name}-{os.getpid()}.gate"
    globs = [a for g in [watch, *hash_globs] for a in ("--glob", g)]
    hashes = [a for g in hash_globs for a in ("--hash", g)]
    try:
        guest.run([env.dsvmi(), "crawl", original, "--index", index, "--gate", gate, *globs])
        events, state_path = work / "events.jsonl", work / "state.jsonl"
        log, stats = work / "run.log", work / "stats.json"
        with open(state_path, "w") as out, open(log, "w") as err:
            engine = subprocess.Popen([env.dsvmi(), "run", "--ring", ring, "--index", index, "--disk", disk,
                                       "--gate", gate, "--policy", "glob:" + watch, "--events", events,
                                       "--data", "--state", "--stats", "--stats-json", stats, "--records",
                                       *hashes, *run_args],
                                      stdout=out, stderr=err)
            deadline = time.monotonic() + 30
            while not engine_ready(events):
                assert engine.poll() is None, f"dsvmi run exited: {log.read_text()}"
                assert time.monotonic() < deadline, "dsvmi run not ready"
                time.sleep(0.05)
            vm = guest.Guest(env, work, workload,
                             guest.DiskChain(disk, dsvmi={"ring": str(ring), "gate": str(gate)}),
                             extra_append=extra_append)
            try:
                vm.start()
                vm.wait(timeout=guest_timeout)
            finally:
                vm.kill()
                engine.send_signal(signal.SIGTERM)
                rc = engine.wait(timeout=120)
        assert rc == 0, f"dsvmi run exited {rc}: {log.read_text()[-2000:]}"
        gs = json.loads(guest.run([env.dsvmi(), "gate-stat", "--json", gate]).stdout)
        sys.stderr.write(log.read_text()[-2000:])
        return EngineRun(events, state_path.read_text(), json.loads(stats.read_text()), gs)
    finally:
        guest.remove_quietly(gate)

#!/usr/bin/env python3
"""A stand-in for the `dsvmi` subcommands the daemon runs (daemon_protocol_test):
ring-create, gate-create, crawl --json, run. It speaks their documented
records (docs/cli-json.md, docs/events.md). Behaviour is set by environment
variables of the daemon process:

  FAKE_CRAWL_SECONDS   how long the crawl takes (progress lines meanwhile)
  FAKE_CRAWL_HOLD      a path: the crawl stops half way until that file exists (at most 120 s),
                       so a test sees a crawl in progress however loaded the machine is
  FAKE_CRAWL_FAIL      crawl exits 1 with this message
  FAKE_RUN_FAIL        run exits 1 at start with this message on stderr
  FAKE_POLICY          on SIGHUP: "ok" (apply the file) or "refuse"
  FAKE_EVENT_INTERVAL  seconds between two events of the engine (0.05)
  FAKE_LOG             file to append "run <pid> started|hup|term" lines to
"""
import json
import os
import signal
import sys
import time

cmd = sys.argv[1] if len(sys.argv) > 1 else ""
args = sys.argv[2:]


def log(what):
    if os.environ.get("FAKE_LOG"):
        with open(os.environ["FAKE_LOG"], "a") as f:
            f.write(f"{what}\n")


def opt(name):
    return args[args.index(name) + 1] if name in args else None


if cmd in ("ring-create", "gate-create"):
    open(args[0], "w").close()
elif cmd == "crawl":
    assert "--json" in args, "the daemon reads the crawl's JSON records"
    if os.environ.get("FAKE_CRAWL_FAIL"):
        print(json.dumps({"crawl": "error", "error": os.environ["FAKE_CRAWL_FAIL"]}), flush=True)
        sys.exit(1)
    total = float(os.environ.get("FAKE_CRAWL_SECONDS", "0"))
    steps = 20
    for i in range(steps + 1):
        print(json.dumps({"crawl": "progress", "file_system": 0, "fraction": i / steps}), flush=True)
        if i < steps:
            time.sleep(total / steps)
        hold = os.environ.get("FAKE_CRAWL_HOLD")
        if hold and i == steps // 2:
            deadline = time.monotonic() + 120
            while not os.path.exists(hold) and time.monotonic() < deadline:
                time.sleep(0.02)
    open(opt("--index"), "w").close()
    fs = {"partition": 0, "type": "ext4", "offset": 0, "size": 67108864, "block_size": 4096, "uuid": "u",
          "label": "", "inodes": 12, "files": 1, "directories": 2, "metadata_blocks": 10, "problems": 0, "error": None}
    print(json.dumps({"crawl": "summary", "disk": args[0], "disk_size": 67108864, "partition_table": "whole-disk",
                      "warnings": [], "file_systems": [fs], "skipped": [], "inodes": 12, "index_bytes": 4096,
                      "seconds": 0.001, "index": opt("--index")}), flush=True)
elif cmd == "run":
    log(f"run {os.getpid()} started {' '.join(args)}")
    if os.environ.get("FAKE_RUN_SIGSYS"):
        # What the engine sandbox's seccomp filter does to a forbidden call.
        os.kill(os.getpid(), signal.SIGSYS)
    if os.environ.get("FAKE_RUN_FAIL"):
        print(f"dsvmi run: {os.environ['FAKE_RUN_FAIL']}", file=sys.stderr)
        sys.exit(1)
    policy_file = opt("--policy-file")
    state = {"gen": 1, "hup": False, "term": False}

    def read_policy():
        with open(policy_file) as f:
            return json.load(f)

    def record(obj):
        print(json.dumps(obj), flush=True)

    # Like dsvmi run: the handlers are in place before the first record.
    signal.signal(signal.SIGHUP, lambda *_: state.__setitem__("hup", True))
    signal.signal(signal.SIGTERM, lambda *_: state.__setitem__("term", True))
    pol = read_policy()
    record({"engine": "policy", "generation": 1, "ok": True, "error": "", "mode": pol["mode"],
            "globs": pol["globs"], "gate_grains": 2})
    record({"engine": "ready", "phase": "replaying", "catch_up_to": 4096, "consumer_index": 0})
    record({"event": "create", "path": "/replayed", "latency_us": 50})
    record({"engine": "ready", "phase": "live", "frames": 1})
    i = 0
    while True:
        if state["hup"]:
            state["hup"] = False
            log(f"run {os.getpid()} hup")
            if os.environ.get("FAKE_POLICY", "ok") == "ok":
                new = read_policy()
                state["gen"] += 1
                pol = new
                record({"engine": "policy", "generation": state["gen"], "ok": True, "error": "",
                        "mode": pol["mode"], "globs": pol["globs"], "gate_grains": 3})
            else:
                record({"engine": "policy", "generation": state["gen"], "ok": False,
                        "error": "refused by the fake engine", "mode": pol["mode"], "globs": pol["globs"],
                        "gate_grains": 2})
        if state["term"]:
            log(f"run {os.getpid()} term")
            record({"event": "create", "path": "/drained", "latency_us": 70})
            sys.exit(0)
        i += 1
        record({"event": "create", "path": f"/f{i}", "latency_us": 1000 + i})
        if i % 10 == 0:
            record({"engine": "stats", "frames": i, "events": i, "write_bytes": 4096 * i, "lost_records": 0,
                    "ring_lag_bytes": 0, "latency_us": {"p50": 1000, "p99": 1500, "max": 1600, "count": 10}})
        time.sleep(float(os.environ.get("FAKE_EVENT_INTERVAL", "0.05")))
else:
    print(f"fake dsvmi: unknown command {cmd}", file=sys.stderr)
    sys.exit(2)

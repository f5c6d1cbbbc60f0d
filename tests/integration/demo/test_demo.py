#!/usr/bin/env python3
"""Runs the README's demo (scripts/demo.py --json) and checks what it showed
against debugfs's view of the demo disk after the guest powered off: every
path the demo reported as created/renamed-to still exists with the reported
type and mode (unless a later event removed it), every path it reported
deleted is gone, and the summary says the gate dropped data in QEMU.

usage: test_demo.py --build-dir BUILD
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "lib"))
import guest  # noqa: E402


def debugfs_mode(image, path):
    """(type letter, permission bits) of path per debugfs, or None if absent."""
    out = guest.run(["debugfs", "-R", f"stat {path}", image], check=False)
    m = re.search(r"Type: (\w+)\s+Mode:\s+(\d+)", out.stdout)
    return (m.group(1), int(m.group(2), 8)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    guest.Env.from_environment(args.build_dir)  # fail, not skip, without QEMU/guest
    r = subprocess.run(["/usr/bin/python3", str(ROOT / "scripts" / "demo.py"), "--build-dir", args.build_dir,
                        "--json"], capture_output=True, text=True, timeout=540)
    sys.stderr.write(r.stderr[-3000:])
    assert r.returncode == 0, f"demo exited {r.returncode}"
    records = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    events = [e for e in records if "event" in e]
    summary = [e for e in records if e.get("demo") == "summary"]
    assert len(summary) == 1, f"demo printed {len(summary)} summary records"
    summary = summary[0]
    image = Path(args.build_dir) / "tests" / "integration-work" / "demo" / "disk.img"

    alive = {}  # path -> attrs of the last event that left it existing
    for e in events:
        kind, path = e["event"], e.get("path")
        if kind in ("create", "mkdir", "symlink", "link", "attrib", "rename"):
            alive[path] = e.get("attrs", {})
            if kind == "rename":
                alive.pop(e["old_path"], None)
        elif kind in ("delete", "rmdir", "unlink"):
            alive.pop(path, None)
            alive[("gone", path)] = None
    created = [p for p in alive if isinstance(p, str)]
    gone = [p[1] for p in alive if isinstance(p, tuple) and p[1] not in alive]
    must = {"/usr/local/bin/.backdoor", "/home/alice/projects/dsvmi/report-final.txt",
            "/usr/local/bin/sshd-helper"}
    assert must <= set(created), f"demo did not report {must - set(created)}"
    assert {"/home/alice/notes.txt", "/tmp/payload.bin"} <= set(gone), f"deletions missing: {gone}"
    for p in created:
        m = debugfs_mode(image, p)
        assert m is not None, f"demo reported {p} but debugfs finds no such file"
        if "mode" in alive[p]:
            assert m[1] & 0o7777 == alive[p]["mode"], f"{p}: demo mode {alive[p]['mode']:o}, debugfs {m[1]:o}"
    for p in gone:
        assert debugfs_mode(image, p) is None, f"demo reported {p} deleted but debugfs still has it"
    assert summary["events"] == len(events), f"summary counts {summary['events']} events, stdout has {len(events)}"
    g = summary["gate"]
    assert g, "summary: no gate counters (status --json had none)"
    written = g["bytes_passed"] + g["bytes_dropped"]
    assert written > 0 and g["bytes_dropped"] / written > 0.5, f"summary: the gate dropped too little: {g}"
    print(f"PASS demo: {len(events)} events; {len(created)} live paths and {len(gone)} deletions agree with debugfs")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

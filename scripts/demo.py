#!/usr/bin/env python3
"""dsvmi demo: a guest's file activity, watched live in low-overhead mode.

Run through scripts/demo.sh (which builds everything first). Steps:
  1. make a small ext4 disk that looks like a server's (/etc, /var/log, /home);
  2. crawl it into an index and publish a gate that passes only file-system
     metadata and the data of /var/log/** (low-overhead mode: QEMU drops every
     other data write before copying it);
  3. start the engine (`dsvmi run`) on a fresh ring, boot the demo guest with
     the dsvmi filter above its disk, and print each inferred event as it
     arrives;
  4. end with a summary: events, writes passed vs dropped by the gate, bytes
     copied into the ring vs bytes the guest wrote.
"""

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration" / "lib"))
import guest  # noqa: E402  (boots the busybox test guest under the patched QEMU)

WATCH = "/var/log/**"

INITIAL_TREE = {
    "etc/hostname": b"web1\n",
    "etc/ssh/sshd_config": b"Port 22\nPermitRootLogin no\nPasswordAuthentication no\n",
    "etc/nginx/nginx.conf": b"worker_processes 2;\n",
    "var/log/syslog": b"Nov 25 00:00:00 web1 kernel: booted\n",
    "var/log/nginx/access.log": b"",
    "home/alice/notes.txt": b"buy milk\n",
    "usr/local/bin": None,
    "tmp": None,
}

# What the guest does: a busy little web server and an intruder. Each step
# ends with `sync` so the journal commits and the engine sees it at once.
WORKLOAD = r"""
step() { sync; sleep 1; }
log() { echo "Nov 25 $(date +%H:%M:%S) web1 $1" >> var/log/syslog; }
i=0
while [ $i -lt 5 ]; do
  echo "10.0.0.$i - - [25/Nov/2026] \"GET /index.html HTTP/1.1\" 200 612" >> var/log/nginx/access.log
  log "nginx: request $i served"
  i=$((i + 1))
done
step
echo "draft report" > home/alice/report.txt
mkdir -p home/alice/projects/dsvmi
step
mv home/alice/report.txt home/alice/projects/dsvmi/report-final.txt
chmod 600 home/alice/projects/dsvmi/report-final.txt
log "alice: report filed"
step
cp /bin/busybox usr/local/bin/.backdoor
chmod 4755 usr/local/bin/.backdoor
echo "PermitRootLogin yes" >> etc/ssh/sshd_config
log "sshd: config reloaded"
step
ln -s /usr/local/bin/.backdoor usr/local/bin/sshd-helper
dd if=/dev/urandom of=tmp/payload.bin bs=64k count=32 2>/dev/null
step
rm -f tmp/payload.bin home/alice/notes.txt
truncate -s 0 var/log/nginx/access.log
log "logrotate: access.log truncated"
step
"""

COLOURS = {
    "create": "32", "mkdir": "32", "symlink": "32", "link": "32",
    "delete": "31", "rmdir": "31", "unlink": "31",
    "rename": "35", "attrib": "33", "truncate": "33", "extend": "33",
    "modify": "36", "overflow": "1;31",
}


def describe(e):
    kind = e.get("event", "?")
    a = e.get("attrs") or {}
    extra = ""
    if kind == "rename":
        extra = f"(from {e.get('old_path')})"
    elif kind == "modify":
        extra = f"{e.get('length', 0)} bytes at offset {e.get('offset', 0)}"
    elif kind in ("truncate", "extend"):
        extra = f"size {e.get('old_size')} -> {e.get('size')}"
    elif kind == "attrib":
        extra = f"mode {a.get('mode', 0):04o} uid {a.get('uid')} gid {a.get('gid')}"
    elif kind == "symlink":
        extra = f"-> {a.get('target', '')}"
    elif kind in ("create", "mkdir", "link"):
        extra = f"mode {a.get('mode', 0):04o} size {a.get('size', 0)}"
    elif kind == "overflow":
        extra = f"{e.get('lost_frames')} frames lost, range re-read from disk"
    return kind, e.get("path", ""), extra


class EventPrinter:
    def __init__(self, as_json):
        self.as_json = as_json
        self.tty = sys.stdout.isatty() and not as_json
        self.counts = collections.Counter()
        self.t0 = time.monotonic()

    def __call__(self, line):
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            return
        self.counts[e.get("event", "?")] += 1
        if self.as_json:
            print(line, flush=True)
            return
        kind, path, extra = describe(e)
        t = time.monotonic() - self.t0
        k = f"{kind:<9}"
        if self.tty:
            k = f"\033[{COLOURS.get(kind, '0')}m{k}\033[0m"
        print(f"  {t:7.2f}s  {k} {path:<48} {extra}", flush=True)


def gate_counters(dsvmi, path):
    """`dsvmi gate-stat` prints `key: value` lines."""
    out = guest.run([dsvmi, "gate-stat", path]).stdout
    return {k: int(v) for k, v in re.findall(r"^\s*([a-z_]+)\s*[:=]\s*(\d+)\s*$", out, re.M)}


def ring_counters(dsvmi, path):
    """The producer and consumer lines of `dsvmi ring-stat`."""
    out = guest.run([dsvmi, "ring-stat", path]).stdout
    c = {}
    m = re.search(r"produced (\d+) frames / (\d+) bytes, dropped (\d+) frames", out)
    if m:
        c["produced_frames"], c["produced_bytes"], c["dropped_frames"] = map(int, m.groups())
    m = re.search(r"delivered (\d+) frames / (\d+) bytes", out)
    if m:
        c["delivered_frames"], c["delivered_bytes"] = map(int, m.groups())
    return c


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--json", action="store_true", help="print events as JSON Lines")
    args = ap.parse_args()

    env = guest.Env.from_environment(args.build_dir)
    dsvmi = env.dsvmi()
    work = guest.workdir_for(args.build_dir, "demo")
    say = (lambda s: print(f"\033[1m==> {s}\033[0m", file=sys.stderr)) if sys.stderr.isatty() \
        else (lambda s: print(f"==> {s}", file=sys.stderr))

    say("making the demo disk (ext4, 128 MiB) and crawling it")
    disk = guest.make_ext4(work / "disk.img", 128, INITIAL_TREE)
    index = work / "disk.dsvx"
    ring = guest.shm_path("demo", "ring")
    gate = guest.shm_path("demo", "gate")
    crawl = guest.run([dsvmi, "crawl", disk, "--index", index, "--gate", gate, "--glob", WATCH])
    print(crawl.stdout.rstrip(), file=sys.stderr)

    say(f"low-overhead mode: the gate passes metadata + data of {WATCH}; starting the engine")
    log_path = work / "engine.log"
    with open(log_path, "w") as log:
        engine = subprocess.Popen(
            [dsvmi, "run", "--ring", ring, "--index", index, "--disk", disk,
             "--gate", gate, "--policy", "glob:" + WATCH, "--stats"],
            stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
    printer = EventPrinter(args.json)
    reader = threading.Thread(target=lambda: [printer(l.rstrip("\n")) for l in engine.stdout], daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while "ready" not in log_path.read_text():
        if engine.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"demo: the engine did not start:\n{log_path.read_text()}")
        time.sleep(0.05)

    say("booting the demo guest under the patched QEMU (TCG); its file activity, live:")
    vm = guest.Guest(env, work, WORKLOAD, guest.DiskChain(disk, dsvmi={"ring": str(ring), "gate": str(gate)}))
    ok = True
    try:
        vm.start()
        vm.wait(timeout=300)
    except guest.GuestError as e:
        ok = False
        print(f"demo: the guest failed: {e}", file=sys.stderr)
    finally:
        vm.kill()
        engine.send_signal(signal.SIGTERM)
        rc = engine.wait(timeout=60)
        reader.join(timeout=10)

    g = gate_counters(dsvmi, gate)
    r = ring_counters(dsvmi, ring)
    passed_w, dropped_w = g.get("writes_passed", 0), g.get("writes_dropped", 0)
    passed_b, dropped_b = g.get("bytes_passed", 0), g.get("bytes_dropped", 0)
    written = passed_b + dropped_b
    print("\nsummary", file=sys.stderr)
    events = ", ".join(f"{n} {k}" for k, n in printer.counts.most_common()) or "none"
    print(f"  events            {sum(printer.counts.values())}: {events}", file=sys.stderr)
    print(f"  guest writes      {passed_w + dropped_w}: {passed_w} passed to the engine, "
          f"{dropped_w} dropped in QEMU by the gate", file=sys.stderr)
    if written:
        print(f"  bytes             {human(written)} written by the guest, {human(passed_b)} copied "
              f"into the ring ({100.0 * dropped_b / written:.1f}% never copied)", file=sys.stderr)
    print(f"  ring              {r.get('produced_frames', 0)} frames produced by QEMU, "
          f"{r.get('delivered_frames', 0)} delivered to the engine, {r.get('dropped_frames', 0)} dropped "
          f"(ring full)", file=sys.stderr)
    print(f"  files             {work} (disk.img, engine.log, console.log)", file=sys.stderr)
    if rc != 0:
        print(f"demo: the engine exited with {rc}; see {log_path}", file=sys.stderr)
    sys.exit(0 if ok and rc == 0 else 1)


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        sys.exit(f"demo: {e}")

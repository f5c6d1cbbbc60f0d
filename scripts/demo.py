#!/usr/bin/env python3
"""dsvmi demo: a guest's file activity, watched live in low-overhead mode.

Run through scripts/demo.sh (which builds everything first). Steps, as an
operator would do them on a host (docs/user-guide.md):
  1. make a small ext4 disk that looks like a server's (/etc, /var/log, /home)
     and boot the demo guest on it under the patched QEMU, WITHOUT dsvmi;
  2. start `dsvmi daemon` and attach it to the running VM through its QMP
     socket: `dsvmi attach --qmp ... --node ... --policy demo.policy`
     (low-overhead mode: the gate passes file-system metadata and the data of
     /var/log/**, QEMU drops every other data write before copying it);
  3. `dsvmi watch 'demo:*:/**'` prints each inferred event as it arrives
     while the guest works;
  4. end with a summary from `dsvmi status` (events, writes passed vs
     dropped by the gate, bytes copied into the ring vs bytes written), then
     `dsvmi detach` while the VM still runs.
"""

import argparse
import collections
import json
import os
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
# It waits for the host's go-ahead (after the attach) on its second serial
# port, and at the end for the host's detach before it powers off.
WORKLOAD = r"""
echo DEMO-READY
read -r go < /dev/ttyS1
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
echo DEMO-DONE
read -r bye < /dev/ttyS1
"""

POLICY = f"""# the demo's policy: low-overhead mode, the logs' contents watched
mode = low-overhead
glob = {WATCH}
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


class Cli:
    """The dsvmi CLI against the demo's daemon."""

    def __init__(self, dsvmi, socket):
        self.dsvmi, self.socket = dsvmi, socket

    def __call__(self, *args, check=True):
        r = subprocess.run([self.dsvmi, *map(str, args), "--socket", self.socket], capture_output=True,
                           text=True, timeout=600)
        if check and r.returncode != 0:
            raise DemoError(f"dsvmi {args[0]}: {(r.stderr or r.stdout).strip()}")
        return r


class DemoError(Exception):
    pass


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

    say("making the demo disk (ext4, 128 MiB) and booting the demo guest on it (no dsvmi yet)")
    disk = guest.make_ext4(work / "disk.img", 128, INITIAL_TREE)
    chain = guest.DiskChain(disk, prefix="demo")
    vm = guest.Guest(env, work, WORKLOAD, chain, control=True)
    state = Path(f"/dev/shm/dsvmi-demo-{os.getpid()}")  # the daemon's rings and gates (tmpfs)
    sock = str(work / "daemon.sock")
    cli = Cli(dsvmi, sock)
    name = "demo:web1:vda"
    policy = work / "demo.policy"
    policy.write_text(POLICY)
    daemon = watch = None
    printer = EventPrinter(args.json)
    ok, summary = True, None
    try:
        vm.start()
        vm.wait_for_console("DEMO-READY", 180)
        daemon = subprocess.Popen([dsvmi, "daemon", "--socket", sock, "--state-dir", state,
                                   "--metrics-file", work / "dsvmi.prom"],
                                  stderr=open(work / "daemon.log", "w"), env=env.process_env())
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"the daemon did not start; see {work / 'daemon.log'}")
            time.sleep(0.05)

        say(f"dsvmi attach --qmp {vm.qmp_path.name} --node {chain.fmt_node} --name {name} "
            f"--policy demo.policy   (low-overhead: metadata + data of {WATCH})")
        t0 = time.monotonic()
        r = cli("attach", "--qmp", vm.qmp_path, "--node", chain.fmt_node, "--name", name, "--policy", policy)
        print(r.stdout.rstrip() or f"attached {name}", file=sys.stderr)
        print(f"  (filter inserted, disk crawled, engine caught up in {time.monotonic() - t0:.1f} s)",
              file=sys.stderr)

        watch = subprocess.Popen([dsvmi, "watch", "demo:*:/**", "--socket", sock], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, bufsize=1)
        last_event = [time.monotonic()]

        def pump():
            for line in watch.stdout:
                last_event[0] = time.monotonic()
                printer(line.rstrip("\n"))
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        time.sleep(0.5)  # subscribed before the guest starts writing

        say("the guest's file activity, live (dsvmi watch 'demo:*:/**'):")
        vm.send_control("go")
        vm.wait_for_console("DEMO-DONE", 300)
        # The last step's events: let the engine drain what the guest synced.
        quiet_since = time.monotonic() + 20
        while time.monotonic() - last_event[0] < 2 and time.monotonic() < quiet_since:
            time.sleep(0.2)
        summary = json.loads(cli("status", "--json").stdout)
        say(f"dsvmi detach {name}   (filter out of the VM's path first, then the engine)")
        t0 = time.monotonic()
        cli("detach", name)
        print(f"  detached in {time.monotonic() - t0:.2f} s; the guest kept running", file=sys.stderr)
        vm.send_control("bye")
        vm.wait(timeout=120)
    except (guest.GuestError, DemoError) as e:
        ok = False
        print(f"demo: {e}", file=sys.stderr)
    finally:
        if watch:
            watch.terminate()
            watch.wait(timeout=30)
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=60)
        vm.kill()
        for log in state.glob("engine-*.log"):  # keep the engine's stderr next to the other files
            (work / log.name).write_bytes(log.read_bytes())
        subprocess.run(["rm", "-rf", str(state)])

    print("\nsummary", file=sys.stderr)
    events = ", ".join(f"{n} {k}" for k, n in printer.counts.most_common()) or "none"
    print(f"  events            {sum(printer.counts.values())}: {events}", file=sys.stderr)
    a = next((x for x in summary or [] if x.get("name") == name), None)
    g = (a or {}).get("gate") or {}
    if g:
        passed_w, dropped_w = g.get("writes_passed", 0), g.get("writes_dropped", 0)
        passed_b, dropped_b = g.get("bytes_passed", 0), g.get("bytes_dropped", 0)
        written = passed_b + dropped_b
        print(f"  guest writes      {passed_w + dropped_w}: {passed_w} passed to the engine, "
              f"{dropped_w} dropped in QEMU by the gate", file=sys.stderr)
        if written:
            print(f"  bytes             {human(written)} written by the guest, {human(passed_b)} copied "
                  f"into the ring ({100.0 * dropped_b / written:.1f}% never copied)", file=sys.stderr)
    print(f"  files             {work} (disk.img, console.log, daemon.log, engine-*.log)", file=sys.stderr)
    if args.json:  # the summary record (docs/cli-json.md, "scripts/demo.py --json")
        print(json.dumps({"demo": "summary", "ok": ok,
                          "events": sum(n for k, n in printer.counts.items() if k != "?"),
                          "gate": {k: g[k] for k in ("writes_passed", "writes_dropped", "bytes_passed",
                                                     "bytes_dropped") if k in g} if g else None}), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        sys.exit(f"demo: {e}")

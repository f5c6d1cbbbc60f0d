#!/usr/bin/env python3
"""The event stream end to end with a real guest (labels: integration, stream).

A real nats-server (random port, its own store dir), `dsvmi daemon --nats`,
one guest (patched QEMU, test guest) running a file workload while the
broker is SIGKILLed and restarted. Checks, each against an outside oracle:
  1. the stream holds exactly the events the local socket watch saw, in the
     same order (the records minus host/vm/disk_seq/run), disk_seq 1..N
     (read back with `dsvmi watch --nats --from-start`; the count also from
     nats-server's own monitoring endpoint /jsz);
  2. the events read from the stream, applied to the tree of the image before
     the guest ran, give debugfs's tree of the final image (the ordering
     contract of docs/events.md, through NATS).
Needs DSVMI_QEMU_PREFIX, DSVMI_GUEST_DIR, DSVMI_CACHE_DIR (scripts/test.sh);
skips (exit 77) only when nats-server is not installed.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE.parent / "infer"))
import guest  # noqa: E402
import infer_oracle as oracle  # noqa: E402

NATS = "/usr/sbin/nats-server"

WORKLOAD = """
echo GUEST-READY
read -r go < /dev/ttyS1
mkdir -p logs old w
echo a > logs/app.log
echo STEP 1
for i in 1 2 3 4 5 6 7 8 9 10; do echo "f $i" > w/f$i; done
sync
echo STEP 2
mv w/f1 old/f1
mv w/f2 w/f3
ln w/f4 old/f4-link
ln -s ../w/f5 old/f5-sym
chmod 600 w/f6
sync
sleep 2
echo STEP 3
rm w/f7
echo more >> logs/app.log
dd if=/dev/zero of=w/big bs=4096 count=64 2>/dev/null
truncate -s 4096 w/big
mkdir -p deep/a/b
echo x > deep/a/b/c
sync
echo STEP 4
rm -r deep
mv logs logs2
sync
echo STEP 5
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Nats:
    def __init__(self, store):
        self.port, self.mon = free_port(), free_port()
        self.store, self.proc = store, None

    def start(self):
        self.proc = subprocess.Popen([NATS, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.mon),
                                      "-sd", str(self.store)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.store / "server.log", "a"))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not listen"
                time.sleep(0.05)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stream_messages(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mon}/jsz?streams=true", timeout=10) as r:
            jsz = json.load(r)
        for acc in jsz.get("account_details", []):
            for st in acc.get("stream_detail", []):
                if st["name"] == "DSVMI":
                    return st["state"]["messages"]
        return None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"


def daemon_request(sock, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(json.dumps({"execute": cmd}).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        assert chunk, "daemon closed the connection"
        buf += chunk
    s.close()
    reply = json.loads(buf)
    assert "return" in reply, reply
    return reply["return"]


STREAM_KEYS = ("host", "vm", "disk_seq", "run")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    if not os.access(NATS, os.X_OK):
        print(f"SKIP: {NATS} is not installed (scripts/install-deps.sh installs nats-server)")
        return 77
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "stream_guest")
    dsvmi = env.dsvmi()
    store = Path(tempfile.mkdtemp(prefix="dsvmi-nats-"))
    state = Path(f"/dev/shm/dsvmi-test-stream-{os.getpid()}")
    sock = str(work / "daemon.sock")
    nats = Nats(store)
    nats.start()

    disk = guest.make_ext4(work / "disk.img", 64, {"hello": b"hi\n", "w/keep": b"k\n"})
    original = work / "original.img"
    shutil.copyfile(disk, original)
    chain = guest.DiskChain(disk, fmt="raw", prefix="vm1")
    vm = guest.Guest(env, work / "vm1", WORKLOAD, chain, control=True)
    daemon = subprocess.Popen([dsvmi, "daemon", "--socket", sock, "--state-dir", str(state), "--nats", nats.url],
                              stderr=open(work / "daemon.log", "w"), env=env.process_env())
    watch = None
    try:
        vm.start()
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, "daemon socket never appeared"
            time.sleep(0.05)
        qmp_mod_wait = time.monotonic() + 60
        while not vm.qmp_path.exists():
            assert time.monotonic() < qmp_mod_wait, "QEMU's QMP socket never appeared"
            time.sleep(0.05)
        r = subprocess.run([dsvmi, "attach", "--qmp", str(vm.qmp_path), "--node", chain.fmt_node, "--name",
                            "h1:vm1:vda", "--mode", "full", "--socket", sock], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"attach: {r.stderr}"
        local_path = work / "local-watch.jsonl"
        watch = subprocess.Popen([dsvmi, "watch", "h1:*:/**", "--socket", sock], stdout=open(local_path, "w"),
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:  # the engine is live (and the watcher subscribed) before the guest writes
            st = json.loads(subprocess.run([dsvmi, "status", "--json", "--socket", sock], capture_output=True,
                                           text=True).stdout)
            if st and not st[0].get("catching_up") and st[0].get("state") == "running":
                break
            assert time.monotonic() < deadline, "the engine never went live"
            time.sleep(0.1)
        vm.wait_for_console("GUEST-READY", 120)
        time.sleep(0.5)
        vm.send_control("go")
        vm.wait_for_console("STEP 2", 120)
        nats.kill9()  # the broker goes away while the guest writes
        vm.wait_for_console("STEP 4", 120)
        nats.start()  # same port, same store
        vm.wait(timeout=300)
        r = subprocess.run([dsvmi, "detach", "h1:vm1:vda", "--socket", sock], capture_output=True, text=True,
                           timeout=120)
        print(f"detach -> {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
        deadline = time.monotonic() + 120
        while True:
            ss = daemon_request(sock, "stream-status")
            if ss["outbox_events"] == 0 and ss["in_flight"] == 0 and ss["acknowledged"] == ss["accepted"]:
                break
            assert time.monotonic() < deadline, f"the outbox never drained: {ss}"
            time.sleep(0.2)
        print("stream-status:", json.dumps(ss))
        assert ss["dropped"] == 0, ss
        watch.terminate()
        watch.wait()
        watch = None
        local = [json.loads(l) for l in local_path.read_text().splitlines() if l.strip()]
        n = len(local)
        assert n >= 20, f"only {n} events watched locally"
        assert ss["accepted"] == n, f"published {ss['accepted']} != {n} watched locally"

        # 1. the stream == the local watch, in order; the server's own count agrees
        assert nats.stream_messages() == n, f"nats-server /jsz: {nats.stream_messages()} messages, wanted {n}"
        r = subprocess.run([dsvmi, "watch", "--nats", nats.url, "h1:*:/**", "--from-start", "--max-events", str(n)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        remote = [json.loads(l) for l in r.stdout.splitlines()]
        assert [e["disk_seq"] for e in remote] == list(range(1, n + 1)), "disk_seq is not 1..N in stream order"
        assert all(e["host"] == "h1" and e["vm"] == "vm1" for e in remote)
        stripped = [{k: v for k, v in e.items() if k not in STREAM_KEYS} for e in remote]
        for i, (a, b) in enumerate(zip(stripped, local)):
            assert a == b, f"event {i}: stream {a} != local watch {b}"
        print(f"1. stream == local watch: {n} events, in order (nats-server was SIGKILLed and restarted meanwhile)")

        # 2. initial tree + the stream's events == the final image
        initial = oracle.debugfs_tree(original)
        replayed, err = oracle.apply_events(initial, remote)
        assert err is None, f"2. replaying the stream's events failed: {err}"
        want = {p: oracle.strip(e) for p, e in oracle.debugfs_tree(disk).items()}
        assert replayed == want, "2. stream events replayed on the original != final:\n" + \
            oracle.diff_trees(replayed, want)
        print(f"2. initial tree + stream events == debugfs of the final image ({len(want)} paths)")
    finally:
        if watch:
            watch.terminate()
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        vm.kill()
        if nats.proc and nats.proc.poll() is None:
            nats.kill9()
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

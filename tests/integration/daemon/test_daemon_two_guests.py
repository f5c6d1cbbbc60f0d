#!/usr/bin/env python3
"""dsvmi daemon end to end with two guests at once (label: integration).

Two TCG guests boot WITHOUT the filter: vm1 on a raw disk, vm2 on a qcow2
disk (read through QEMU's own NBD export) plus an NTFS disk. Each waits for
the host's go-ahead, then loops: append a line to /var/log/app.log, write
/data/f<i> (8 KiB), overwrite 64 KiB of /data/big in place, sync, print
ITER i. A third QEMU is Debian's stock binary (no dsvmi driver), paused.
The host runs `dsvmi daemon --metrics-listen` and drives it only through the
CLI (and HTTP for the metrics):
  - error paths first: wrong QMP socket, unknown node, a node no device
    uses, detach of an unknown name, bad watch pattern, bad policy file,
    NTFS (crawled, not followed live), the unpatched QEMU: exit status 1 (2 for
    usage), one line on stderr, and nothing left behind (QMP
    query-named-block-nodes / query-block / query-block-exports of the VM,
    the daemon's state dir, dsvmi status);
  - attach vm1 (policy glob = /var/log/**), go; while vm1 streams, attach
    vm2 (qcow2, full mode) and measure what vm1 delivered to a watcher and
    how long `dsvmi status` took meanwhile (printed, not asserted);
  - metrics: GET /metrics parsed by prometheus_client's own text parser
    (and the textfile the same way), 404/405 for the rest;
  - live policy changes on vm1 while it writes: /data/** then metadata only,
    then full mode (gate pass-all: no write dropped after the reply);
    the engine must not restart (same pid), every file created across the
    switches has its create event, /data modify events start, and the gate's
    own counters show the dropped bytes per iteration rise when the glob goes;
  - detach vm1 (timed), re-attach it in full mode, detach again;
  - vm2: its engine is killed (status shows it, vm1 keeps streaming), then
    the guest powers off (QEMU gone) and detach still succeeds, naming it;
  - the daemon is SIGKILLed with vm1 attached: a second daemon replaces the
    dead one's filter at attach, detaches cleanly, the orphaned engine ends.
Oracles: the guests' own action lists (ITER lines, DSVMI-FILES, md5 re-read
in the guest), debugfs and e2fsck on the final images (qcow2 converted with
qemu-img), QEMU's QMP queries, the gate's counters, Prometheus' parser.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
import guest  # noqa: E402
import qmp as qmp_mod  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # scripts/install-deps.sh installs python3-prometheus-client
    text_string_to_metric_families = None

STOCK_QEMU = "/usr/bin/qemu-system-x86_64"  # Debian's qemu-system-x86: no dsvmi driver

WORKLOAD = """
mkdir -p var/log data
echo GUEST-READY
read -r go < /dev/ttyS1
rm -f /tmp/stop
( read -r cmd < /dev/ttyS1; touch /tmp/stop ) &
i=0
while [ ! -f /tmp/stop ]; do
    echo "line $i" >> var/log/app.log
    yes "data $i" | head -c 8192 > data/f$i
    yes "big $i" | head -c 65536 | dd of=data/big bs=4096 seek=16 conv=notrunc 2>/dev/null
    sync
    echo "ITER $i"
    i=$((i + 1))
done
sync
echo 3 > /proc/sys/vm/drop_caches
j=0
while [ $j -lt $i ]; do
    want=$(yes "data $j" | head -c 8192 | md5sum)
    got=$(md5sum < data/f$j)
    if [ "$want" != "$got" ]; then echo "DSVMI-MISMATCH data/f$j"; exit 1; fi
    j=$((j + 1))
done
echo "DSVMI-FILES $i"
"""


def last_iter(console):
    m = re.findall(r"^ITER (\d+)", console, re.M)
    return int(m[-1]) if m else -1


class Cli:
    def __init__(self, dsvmi, socket):
        self.dsvmi, self.socket = dsvmi, socket

    def run(self, *args, expect=0, quiet=False):
        r = subprocess.run([self.dsvmi, *args, "--socket", self.socket], capture_output=True, text=True,
                           timeout=300)
        if not quiet:
            print(f"$ dsvmi {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}".rstrip())
        assert r.returncode == expect, f"dsvmi {args}: exit {r.returncode}, wanted {expect}: {r.stderr}"
        if expect != 0:
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("dsvmi "), f"not a one-line error: {r.stderr!r}"
        return r

    def status(self, quiet=False):
        return {a["name"]: a for a in json.loads(self.run("status", "--json", quiet=quiet).stdout)}


def qmp_view(qmp_path):
    """(node names, {qdev: root node}, block export ids) as QEMU reports them."""
    with qmp_mod.QMP.connect(str(qmp_path), timeout=30) as q:
        nodes = [n["node-name"] for n in q.execute("query-named-block-nodes")]
        roots = {b.get("qdev"): b.get("inserted", {}).get("node-name") for b in q.execute("query-block")}
        exports = [e["id"] for e in q.execute("query-block-exports")]
    return nodes, roots, exports


def assert_untouched(qmp_path, device_root):
    nodes, roots, exports = qmp_view(qmp_path)
    assert not any(n.startswith("dsvmi-") for n in nodes), f"a failed attach left a filter: {nodes}"
    assert device_root in roots.values(), f"a failed attach did not restore the drive: {roots}"
    assert not exports, f"a failed attach left an NBD export: {exports}"


def wait_live(cli, name):
    """Until the engine has replayed what was written during the crawl."""
    deadline = time.monotonic() + 120
    while cli.status(quiet=True)[name]["catching_up"]:
        assert time.monotonic() < deadline, f"{name}: the engine never caught up"
        time.sleep(0.1)


def parse_prometheus(text, what):
    """{(name, labels-tuple): value} via prometheus_client's parser (an oracle
    nobody here wrote), plus {family: type}."""
    assert text_string_to_metric_families, "python3-prometheus-client is missing (scripts/install-deps.sh)"
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples, f"{what}: no samples"
    return samples, types


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "daemon_two_guests")
    sock = str(work / "daemon.sock")
    state = Path(f"/dev/shm/dsvmi-test-daemon-{os.getpid()}")  # rings and gates on tmpfs
    metrics_port = 20000 + os.getpid() % 20000
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    cli = Cli(env.dsvmi(), sock)
    qemu_img = env.tool("qemu-img")

    vms = {}
    for name in ("vm1", "vm2"):
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        # data/big: an allocated file the workload overwrites in place (64 KiB
        # per iteration, in its middle: the block layer would merge a write
        # adjacent to the /data directory block, and a merged write passes
        # whole), so whether those blocks pass the gate follows the policy.
        # vm2's disk is a qcow2 of 4 GiB (a longer crawl, through NBD).
        size = 64 if name == "vm1" else 4096
        disk = guest.make_ext4(d / "disk.img", size, {"hello": b"hi\n", "data/big": b"x" * (256 << 10)})
        extra = []
        if name == "vm2":
            qcow = d / "disk.qcow2"
            guest.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", disk, qcow], env=env.process_env())
            disk.unlink()
            disk = qcow
            blank = d / "blank.img"  # a second disk whose file system dsvmi does not follow live (NTFS)
            guest.run(["truncate", "-s", "16M", blank])
            guest.run(["mkntfs", "-F", "-Q", "-q", blank])
            extra = ["-blockdev", json.dumps({"driver": "file", "node-name": "blank-file", "filename": str(blank)}),
                     "-blockdev", json.dumps({"driver": "raw", "node-name": "blank-raw", "file": "blank-file"}),
                     "-device", "virtio-blk-pci,id=vdisk1,drive=blank-raw"]
        chain = guest.DiskChain(disk, fmt="raw" if name == "vm1" else "qcow2", prefix=name)
        vms[name] = (guest.Guest(env, d, WORKLOAD, chain, control=True, extra_args=extra), chain, disk)

    # Debian's stock QEMU, paused before boot: it only has to hold a disk.
    stock = None
    stock_qmp = work / "stock" / "qmp.sock"
    if os.access(STOCK_QEMU, os.X_OK):
        (work / "stock").mkdir()
        sdisk = guest.make_ext4(work / "stock" / "disk.img", 16, {"hello": b"hi\n"})
        stock = subprocess.Popen(
            [STOCK_QEMU, "-M", "q35", "-accel", "tcg", "-S", "-nodefaults", "-no-user-config", "-display", "none",
             "-qmp", f"unix:{stock_qmp},server=on,wait=off",
             "-blockdev", json.dumps({"driver": "file", "node-name": "s-file", "filename": str(sdisk)}),
             "-blockdev", json.dumps({"driver": "raw", "node-name": "s-raw", "file": "s-file"}),
             "-device", "virtio-blk-pci,id=vdisk0,drive=s-raw"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(work / "stock" / "qemu.stderr", "w"),
            start_new_session=True)
    else:
        print(f"NOTE: {STOCK_QEMU} not installed (apt-get install qemu-system-x86): unpatched-QEMU path not run")

    daemon = subprocess.Popen([env.dsvmi(), "daemon", "--socket", sock, "--state-dir", str(state),
                               "--metrics-file", str(work / "dsvmi.prom"),
                               "--metrics-listen", f"127.0.0.1:{metrics_port}"],
                              stderr=open(work / "daemon.log", "w"), env=env.process_env())
    watch = None
    measured = {}
    try:
        for vm, _, _ in vms.values():
            vm.start()
        for vm, _, _ in vms.values():
            vm.wait_for_console("GUEST-READY", 120)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, "daemon socket never appeared"
            time.sleep(0.05)
        vm1, chain1, disk1 = vms["vm1"]
        vm2, chain2, disk2 = vms["vm2"]

        # -- error paths: one line, non-zero, nothing attached ------------------
        r = cli.run("attach", "--qmp", str(work / "no-such-qmp.sock"), "--node", chain1.fmt_node, expect=1)
        assert "-qmp unix:" in r.stderr
        r = cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", "no-such-node", expect=1)
        assert "node 'no-such-node' not found" in r.stderr and chain1.fmt_node in r.stderr
        r = cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", chain1.file_node, expect=1)
        assert "no device's drive" in r.stderr
        cli.run("detach", "h1:vm1:vda", expect=1)
        cli.run("watch", "no-path-here", expect=1)
        cli.run("policy", "set", "h1:vm1:vda", str(work / "nonexistent.policy"), expect=1)
        bad_policy = work / "bad.policy"
        bad_policy.write_text("mode = low-overhead\nglobz = /x\n")
        r = cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", chain1.fmt_node, "--policy",
                    str(bad_policy), expect=1)
        assert "unknown key 'globz'" in r.stderr
        r = cli.run("attach", "--qmp", str(vm2.qmp_path), "--node", "blank-raw", expect=1)
        assert "no supported file system" in r.stderr and "ntfs" in r.stderr, r.stderr
        assert_untouched(vm2.qmp_path, "blank-raw")
        assert_untouched(vm1.qmp_path, chain1.fmt_node)
        if stock:
            qmp_mod.wait_for_socket(str(stock_qmp))
            r = cli.run("attach", "--qmp", str(stock_qmp), "--node", "s-raw", expect=1)
            assert "no dsvmi filter driver" in r.stderr and "qemu-patches/build.sh" in r.stderr, r.stderr
            assert_untouched(stock_qmp, "s-raw")
            # the same QEMU reading a raw image through NBD (read nbd): export and
            # server are gone again as well
            r = cli.run("attach", "--qmp", str(stock_qmp), "--node", "s-raw", "--read", "nbd", expect=1)
            assert "no dsvmi filter driver" in r.stderr, r.stderr
            assert_untouched(stock_qmp, "s-raw")
        assert cli.status() == {}
        left = sorted(p.name for p in state.iterdir()) if state.exists() else []
        assert not [n for n in left if not n.startswith("engine-")], f"failed attaches left files: {left}"

        # -- attach vm1, then vm2 while vm1 streams -----------------------------
        logs_policy = work / "logs.policy"
        logs_policy.write_text("# watch the logs only\nmode = low-overhead\nglob = /var/log/**\n")
        cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", chain1.fmt_node, "--name", "h1:vm1:vda",
                "--policy", str(logs_policy))
        r = cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", chain1.fmt_node, "--name", "h1:vm1:vda",
                    expect=1)
        assert "already attached" in r.stderr

        watch_path = work / "watch.jsonl"
        watch_out = open(watch_path, "w")
        watch = subprocess.Popen([env.dsvmi(), "watch", "h1:*:/**", "--socket", sock], stdout=watch_out,
                                 stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # subscribed before the guests start writing
        caught_up = {"vm1": last_iter(vm1.console())}
        wait_live(cli, "h1:vm1:vda")
        vm1.send_control("go")

        def wait_iters(vm, n, what):
            start = last_iter(vm.console())
            vm.wait_until(lambda c: last_iter(c) >= start + n, f"{n} more files ({what})", 240)
            return last_iter(vm.console())

        def vm_events(name):
            text = watch_path.read_text()
            return sum(1 for line in text.splitlines() if f'"disk":"h1:{name}:vda"' in line.replace(" ", ""))

        wait_iters(vm1, 6, "vm1 attached, logs policy")
        # vm2's attach runs in the background; meanwhile vm1's events must keep
        # reaching the watcher and status must answer (measured, printed).
        before = vm_events("vm1")
        t0 = time.monotonic()
        attach2 = subprocess.Popen([env.dsvmi(), "attach", "--qmp", str(vm2.qmp_path), "--node", chain2.fmt_node,
                                    "--name", "h1:vm2:vda", "--mode", "full", "--socket", sock],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        status_times, states_seen, seen_during = [], [], before
        while attach2.poll() is None:
            s0 = time.monotonic()
            st = cli.status(quiet=True)
            status_times.append(time.monotonic() - s0)
            if "h1:vm2:vda" in st:
                v2 = st["h1:vm2:vda"]
                states_seen.append((v2["state"], round(v2.get("crawl", {}).get("fraction", 1.0), 2)))
            n = vm_events("vm1")
            if attach2.poll() is None:  # still attaching: these reached the watcher meanwhile
                seen_during = n
            time.sleep(0.05)
        attach2_s = time.monotonic() - t0
        out2, err2 = attach2.communicate()
        print(f"$ dsvmi attach vm2 (qcow2, background) -> {attach2.returncode}\n{out2}{err2}".rstrip())
        assert attach2.returncode == 0, err2
        assert "read via nbd+unix://" in out2, out2
        during = seen_during - before
        measured["attach_vm2_s"] = attach2_s
        measured["vm1_events_during_vm2_attach"] = during
        measured["status_calls_during_attach"] = len(status_times)
        measured["status_max_s_during_attach"] = max(status_times) if status_times else None
        print(f"vm2 attach (qcow2 via NBD, 4 GiB) took {attach2_s:.2f} s; meanwhile vm1 delivered {during} events "
              f"to the watcher, {len(status_times)} status calls answered (max {measured['status_max_s_during_attach']}"
              f" s); vm2 states seen: {sorted(set(states_seen))}")
        wait_live(cli, "h1:vm2:vda")
        caught_up["vm2"] = last_iter(vm2.console())
        vm2.send_control("go")
        nodes, roots, exports = qmp_view(vm2.qmp_path)
        assert exports, f"vm2 (qcow2) is attached but QEMU has no NBD export: {exports}"
        # A second disk of the same VM through the same NBD server (reused),
        # failing (NTFS): its rollback deletes its own export only.
        r = cli.run("attach", "--qmp", str(vm2.qmp_path), "--node", "blank-raw", "--read", "nbd", expect=1)
        assert "no supported file system" in r.stderr, r.stderr
        nodes, roots, exports2 = qmp_view(vm2.qmp_path)
        assert exports2 == exports, f"vm2's export changed by another disk's failed attach: {exports} -> {exports2}"
        assert roots.get("/machine/peripheral/vdisk1/virtio-backend") == "blank-raw", roots

        wait_iters(vm1, 6, "attached, logs policy")
        wait_iters(vm2, 6, "attached, full")
        st = cli.status()
        g1, g2 = st["h1:vm1:vda"]["gate"], st["h1:vm2:vda"]["gate"]
        assert st["h1:vm1:vda"]["engine"] == "running" and st["h1:vm2:vda"]["engine"] == "running", st
        assert st["h1:vm2:vda"]["read"] == "nbd" and st["h1:vm1:vda"]["read"] == "file", st
        assert g1["mode"] == "set" and g1["writes_passed"] > 0 and g1["writes_dropped"] > 0, g1
        assert g2["mode"] == "pass-all" and g2["writes_passed"] > 0 and g2["writes_dropped"] == 0, g2
        cli.run("status")  # the human view renders

        # -- metrics: HTTP endpoint and textfile, parsed by Prometheus' parser ---
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(metrics_url + "/metrics", timeout=10) as resp:
                ctype = resp.headers["Content-Type"]
                body = resp.read().decode()
            samples, types = parse_prometheus(body, "GET /metrics")
            c1 = sample(samples, "dsvmi_event_latency_seconds_count", disk="h1:vm1:vda")
            if c1 and sample(samples, "dsvmi_gate_writes_passed_total", disk="h1:vm2:vda"):
                break
            assert time.monotonic() < deadline, f"metrics never showed vm1 event latencies:\n{body}"
            time.sleep(1)
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
        assert types.get("dsvmi_event_latency_seconds") == "histogram", types
        assert types.get("dsvmi_events") == "counter", types  # prometheus_client strips _total
        for d in ("h1:vm1:vda", "h1:vm2:vda"):
            assert sample(samples, "dsvmi_engine_up", disk=d) == 1.0, d
            assert sample(samples, "dsvmi_attachment_state", disk=d, state="running") == 1.0, d
            assert sample(samples, "dsvmi_ring_lag_bytes", disk=d) is not None, d
            assert sample(samples, "dsvmi_ring_lost_records_total", disk=d) is not None, d
            buckets = sorted((float(dict(k[1])["le"]), v) for k, v in samples.items()
                             if k[0] == "dsvmi_event_latency_seconds_bucket" and dict(k[1])["disk"] == d)
            counts = [v for _, v in buckets]
            assert counts == sorted(counts) and buckets[-1][0] == float("inf"), buckets
            assert buckets[-1][1] == sample(samples, "dsvmi_event_latency_seconds_count", disk=d), buckets
        assert sample(samples, "dsvmi_gate_writes_dropped_total", disk="h1:vm2:vda") == 0.0
        lat1 = sample(samples, "dsvmi_event_latency_seconds_sum", disk="h1:vm1:vda") / c1
        measured["vm1_mean_event_latency_s"] = lat1
        for path, want in (("/", 404), ("/metrics/x", 404)):
            try:
                urllib.request.urlopen(metrics_url + path, timeout=10)
                raise AssertionError(f"GET {path} succeeded")
            except urllib.error.HTTPError as e:
                assert e.code == want, (path, e.code)
        try:
            urllib.request.urlopen(urllib.request.Request(metrics_url + "/metrics", data=b"x", method="POST"),
                                   timeout=10)
            raise AssertionError("POST /metrics succeeded")
        except urllib.error.HTTPError as e:
            assert e.code == 405, e.code
        prom_path, deadline = work / "dsvmi.prom", time.monotonic() + 30
        while True:
            prom = prom_path.read_text() if prom_path.exists() else ""
            if prom:
                fsamples, _ = parse_prometheus(prom, "textfile")
                if sample(fsamples, "dsvmi_gate_writes_passed_total", disk="h1:vm1:vda"):
                    break
            assert time.monotonic() < deadline, f"metrics file never showed vm1:\n{prom}"
            time.sleep(0.5)
        cli.run("policy", "explain", "h1:vm1:vda", str(work / "logs.policy"))  # the human view renders
        ex = json.loads(cli.run("policy", "explain", "h1:vm1:vda", str(work / "logs.policy"), "--json").stdout)
        assert 0 < ex["passes_fraction"] < 1, ex
        assert ex["gate"]["metadata_blocks"] > 0, ex

        # -- live policy changes while vm1 writes --------------------------------
        engine_pid = st["h1:vm1:vda"]["engine_pid"]
        data_policy = work / "data.policy"
        data_policy.write_text('{"mode": "low-overhead", "globs": ["/data/**"]}\n')
        watch_out.flush()
        lines_before_policy = len(watch_path.read_text().splitlines())
        policy_from = last_iter(vm1.console())
        r = json.loads(cli.run("policy", "set", "h1:vm1:vda", str(data_policy), "--json").stdout)
        measured["policy_set_s"] = r["seconds"]
        # A policy the CLI and daemon pass but the engine refuses (a size beyond
        # 64 bits): the old one stays in force, the engine's reason is shown.
        refused = work / "refused.policy"
        refused.write_text("mode = low-overhead\nglob = /nothing/**\npending_max = 99999999999999999999G\n")
        r = cli.run("policy", "set", "h1:vm1:vda", str(refused), expect=1)
        assert "refused" in r.stderr and "pending_max" in r.stderr, r.stderr
        st = cli.status()["h1:vm1:vda"]
        assert st["globs"] == ["/data/**"] and st["policy_generation"] == 2, st
        wait_iters(vm1, 8, "data policy")

        # Removing the glob: the /data blocks are dropped in QEMU again, so
        # the gate drops more bytes per guest iteration.
        def per_iter(what):
            g0, i0 = cli.status()["h1:vm1:vda"]["gate"], last_iter(vm1.console())
            i1 = wait_iters(vm1, 10, what)
            g1_ = cli.status()["h1:vm1:vda"]["gate"]
            return ((g1_["bytes_passed"] - g0["bytes_passed"]) / (i1 - i0),
                    (g1_["bytes_dropped"] - g0["bytes_dropped"]) / (i1 - i0))
        passed_watching_data = per_iter("data policy, measuring")
        meta_policy = work / "meta.policy"
        meta_policy.write_text("mode = low-overhead\n")
        cli.run("policy", "set", "h1:vm1:vda", str(meta_policy))
        policy_to = last_iter(vm1.console())
        wait_iters(vm1, 3, "metadata policy")
        passed_metadata_only = per_iter("metadata policy, measuring")
        print(f"gate bytes per iteration (passed, dropped): /data watched {passed_watching_data}, "
              f"metadata only {passed_metadata_only}")
        measured["gate_per_iter_data_watched"] = passed_watching_data
        measured["gate_per_iter_metadata_only"] = passed_metadata_only
        # /data/big's 64 KiB in-place overwrite passes only while /data is watched.
        assert passed_metadata_only[1] >= passed_watching_data[1] + 32768, \
            "removing the /data glob did not make the gate drop /data/big's overwrites"
        st = cli.status()["h1:vm1:vda"]
        assert st["engine_pid"] == engine_pid and st["engine_restarts"] == 0, \
            f"policy set restarted the engine: pid {engine_pid} -> {st['engine_pid']}"
        assert st["policy_changes"] >= 2 and st["globs"] == [], st
        assert st["engine"] == "running", st
        # Live switch to full mode: the gate passes everything from the reply on.
        full_policy = work / "full.policy"
        full_policy.write_text("mode = full\n")
        cli.run("policy", "set", "h1:vm1:vda", str(full_policy))
        g0 = cli.status()["h1:vm1:vda"]["gate"]
        wait_iters(vm1, 4, "full mode")
        st = cli.status()["h1:vm1:vda"]
        assert st["mode"] == "full" and st["gate"]["mode"] == "pass-all", st
        assert st["gate"]["writes_dropped"] == g0["writes_dropped"], (g0, st["gate"])
        assert st["gate"]["writes_passed"] > g0["writes_passed"], (g0, st["gate"])
        assert st["engine_pid"] == engine_pid, "the switch to full mode restarted the engine"

        # -- detach vm1 (timed), re-attach, detach --------------------------------
        before_detach = last_iter(vm1.console())  # files up to here were synced before the detach began
        t0 = time.monotonic()
        r = cli.run("detach", "h1:vm1:vda")
        detach_s = time.monotonic() - t0
        measured["detach_vm1_s"] = detach_s
        detached_at = last_iter(vm1.console())
        nodes, roots, exports = qmp_view(vm1.qmp_path)
        assert list(roots.values()) == [chain1.fmt_node], f"after detach the device's root is {roots}"
        assert not any(n.startswith("dsvmi-") for n in nodes), f"filter node left behind: {nodes}"
        print(f"detach of vm1 took {detach_s:.3f} s (the seed needed ~10 s; measured, not asserted)")
        wait_iters(vm1, 4, "detached")
        reattach_from = last_iter(vm1.console())
        cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", chain1.fmt_node, "--name", "h1:vm1:vda",
                "--mode", "full")
        # Events of what the guest wrote during the crawl are withheld until the
        # engine has replayed the ring (its ready record, phase live): the
        # window of complete events starts after that.
        wait_live(cli, "h1:vm1:vda")
        reattach_live = last_iter(vm1.console())
        measured["reattach_catch_up_iterations"] = reattach_live - reattach_from
        wait_iters(vm1, 6, "re-attached")

        # -- vm2: engine killed (others unaffected), then QEMU gone -------------
        # Pause vm2 and let its engine consume the ring, so the files before the
        # kill are known to have been seen; then kill the engine, resume.
        with qmp_mod.QMP.connect(str(vm2.qmp_path), timeout=30) as q:
            q.execute("stop")
            prev, deadline = None, time.monotonic() + 60
            while True:
                v2 = cli.status(quiet=True)["h1:vm2:vda"]
                now = (v2["ring_counters"].get("lag_bytes"), v2["events"])
                if now[0] == 0 and now == prev:
                    break
                assert time.monotonic() < deadline, f"vm2's engine never consumed its ring: {v2['ring']}"
                prev = now
                time.sleep(0.5)
            vm2_engine_killed_at = last_iter(vm2.console())
            os.kill(v2["engine_pid"], signal.SIGKILL)
            q.execute("cont")
        deadline = time.monotonic() + 30
        while cli.status(quiet=True)["h1:vm2:vda"]["engine"] == "running":
            assert time.monotonic() < deadline, "status never showed vm2's engine dead"
            time.sleep(0.2)
        assert cli.status()["h1:vm2:vda"]["engine"] == "exited: signal 9"
        ev_before = cli.status()["h1:vm1:vda"]["events"]
        wait_iters(vm1, 4, "vm2's engine dead")
        assert cli.status()["h1:vm1:vda"]["events"] > ev_before, "vm1 stopped streaming when vm2's engine died"
        vm2.send_control("stop")
        consoles = {"vm2": vm2.wait(timeout=300)}  # the guest powers off: QEMU is gone
        r = cli.run("detach", "h1:vm2:vda")
        assert "VM gone" in r.stdout, r.stdout
        before_detach2 = last_iter(vm1.console())
        t0 = time.monotonic()
        cli.run("detach", "h1:vm1:vda")
        measured["detach_vm1_full_s"] = time.monotonic() - t0
        assert cli.status() == {}

        # -- the daemon dies (SIGKILL) while vm1 is attached ---------------------
        # Its filter stays in vm1's path; the next daemon removes it (its pid in
        # the filter's name is gone) and attaches afresh; the old engine dies
        # with its pipe.
        cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", chain1.fmt_node, "--name", "h1:vm1:vda")
        old_engine = cli.status()["h1:vm1:vda"]["engine_pid"]
        old_filter = [n for n in qmp_view(vm1.qmp_path)[0] if n.startswith("dsvmi-")]
        daemon.kill()
        daemon.wait()
        nodes, roots, _ = qmp_view(vm1.qmp_path)
        assert list(roots.values()) == old_filter, f"the dead daemon's filter is not in the path: {roots}"
        daemon = subprocess.Popen([env.dsvmi(), "daemon", "--socket", sock, "--state-dir", str(state)],
                                  stderr=open(work / "daemon2.log", "w"), env=env.process_env())
        deadline = time.monotonic() + 30
        while subprocess.run([env.dsvmi(), "status", "--socket", sock], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "the second daemon never answered"
            time.sleep(0.1)
        r = cli.run("attach", "--qmp", str(vm1.qmp_path), "--node", chain1.fmt_node, "--name", "h1:vm1:vda")
        assert f"removed the stale filter {old_filter[0]}" in r.stdout, r.stdout
        nodes, roots, _ = qmp_view(vm1.qmp_path)
        filters = [n for n in nodes if n.startswith("dsvmi-")]
        assert len(filters) == 1 and filters != old_filter and list(roots.values()) == filters, (nodes, roots)
        wait_iters(vm1, 3, "attached by the second daemon")
        assert cli.status()["h1:vm1:vda"]["events"] > 0
        cli.run("detach", "h1:vm1:vda")
        nodes, roots, _ = qmp_view(vm1.qmp_path)
        assert list(roots.values()) == [chain1.fmt_node] and not any(n.startswith("dsvmi-") for n in nodes), nodes
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{old_engine}") and "zombie" not in \
                Path(f"/proc/{old_engine}/status").read_text(errors="replace"):
            assert time.monotonic() < deadline, f"the dead daemon's engine {old_engine} is still running"
            time.sleep(0.2)
        vm1.send_control("stop")
        consoles["vm1"] = vm1.wait(timeout=300)
    finally:
        if watch:
            watch.terminate()
            watch.wait()
        daemon.terminate()
        daemon.wait(timeout=60)
        for vm, _, _ in vms.values():
            vm.kill()
        if stock:
            stock.kill()
            stock.wait()
        if state.exists():
            for log in state.glob("engine-*.log"):  # keep the engines' stderr for a post-mortem
                (work / log.name).write_bytes(log.read_bytes())
        subprocess.run(["rm", "-rf", str(state)])

    left = [p for p in state.parent.glob(state.name + "/*")]
    assert not left, left
    events = [json.loads(l) for l in watch_path.read_text().splitlines()]
    print(f"{len(events)} events watched; measured: {json.dumps(measured)}")
    # Files whose ITER line the guest printed (after its sync) before a detach
    # began must all have their events: the filter goes out first, then the
    # engine drains the ring. Windows start once the engine is live.
    windows = {
        "vm1": [range(caught_up["vm1"] + 1, before_detach + 1), range(reattach_live + 1, before_detach2 + 1)],
        "vm2": [range(caught_up["vm2"] + 1, vm2_engine_killed_at + 1)],
    }
    print(f"complete-event windows (ITER numbers): {windows}")
    for name, (vm, chain, disk) in vms.items():
        n = int(re.search(r"DSVMI-FILES (\d+)", consoles[name]).group(1))
        raw = disk
        if chain.fmt == "qcow2":
            raw = disk.with_suffix(".raw")
            guest.run([qemu_img, "convert", "-f", "qcow2", "-O", "raw", disk, raw], env=env.process_env())
        clean, out = guest.e2fsck_clean(raw)
        assert clean, f"{name}: e2fsck -fn:\n{out}"
        listing = guest.debugfs(raw, "ls -p /data")
        on_disk = {f"/data/{m}" for m in re.findall(r"/\d+/\d+/\d+/\d+/(f\d+)/", listing)}
        assert "/big/" in listing, f"{name}: /data/big missing"
        assert len(on_disk) == n, f"{name}: debugfs lists {len(on_disk)} files, guest wrote {n}"
        mine = [e for e in events if e.get("disk") == f"h1:{name}:vda"]
        created = {e["path"] for e in mine if e.get("event") == "create"}
        assert created, f"{name}: no create events"
        assert created <= on_disk | {"/var/log/app.log"}, f"{name}: events for files not on disk: {created - on_disk}"
        # Every file written while attached and caught up has its create event,
        # including those written across the live policy changes.
        missing = [i for w in windows[name] for i in w if f"/data/f{i}" not in created]
        assert not missing, f"{name}: no create event for /data/f{missing}"
        lat = [e["latency_us"] for e in mine if "latency_us" in e]
        assert len(lat) == len(mine), f"{name}: events without latency_us"
        lat.sort()
        print(f"{name}: {n} files, {len(mine)} events, {len(created)} creates, event latency p50 "
              f"{lat[len(lat) // 2] / 1000:.1f} ms, p99 {lat[len(lat) * 99 // 100] / 1000:.1f} ms, "
              f"max {lat[-1] / 1000:.1f} ms")
    policy_window = [i for i in range(policy_from, policy_to + 1) if f"/data/f{i}" in
                     {e["path"] for e in events if e.get("disk") == "h1:vm1:vda" and e.get("event") == "create"}]
    assert len(policy_window) == policy_to + 1 - policy_from, "files created across the policy switches are missing"
    vm1_events = [(k, e) for k, e in enumerate(events) if e.get("disk") == "h1:vm1:vda"]
    data_mod_before = [e for k, e in vm1_events if k < lines_before_policy and e.get("event") == "modify"
                       and e.get("path", "").startswith("/data/")]
    data_mod_after = [e for k, e in vm1_events if k >= lines_before_policy and e.get("event") == "modify"
                      and e.get("path", "").startswith("/data/")]
    log_mod_before = [e for k, e in vm1_events if k < lines_before_policy and e.get("event") == "modify"
                      and e.get("path") == "/var/log/app.log"]
    assert log_mod_before, "vm1: no modify event for /var/log/app.log under the logs policy"
    assert not data_mod_before, f"vm1: /data modified events before /data was watched: {data_mod_before[:2]}"
    assert data_mod_after, "vm1: no /data modify event after policy set to /data/**"
    print(f"MEASURED {json.dumps(measured)}")
    print("PASS daemon_two_guests")


if __name__ == "__main__":
    main()

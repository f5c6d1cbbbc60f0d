#!/usr/bin/env python3
"""Content hashes through the daemon and `dsvmi watch --known` (label:
integration; docs/hashes.md).

A TCG guest boots without the filter and waits. The host starts `dsvmi
daemon`, attaches the disk with a policy file that watches /var/log/** and
hashes /etc/** and /usr/bin/** (hash_max 1M), and runs `dsvmi watch --known
LIST` where LIST is `sha256sum` output naming one good content. Then the
guest rewrites /etc/good.conf with exactly that content, replaces
/usr/bin/tool with something else, appends to a watched (not hashed) log,
writes a hashed file over the limit, syncs and powers off. Checks:
  - `dsvmi status --json` lists the hash globs; a policy change that would
    change them is refused with one clear line (they are fixed while
    attached) and the engine keeps running;
  - for every file under /etc and /usr/bin in the final image, the watcher's
    last hash event for it carries the SHA-256 that sha256sum prints for
    debugfs's dump of it (or hash_skipped over the limit);
  - "known" is true (with the list's name) for /etc/good.conf's last hash
    and false for /usr/bin/tool's; the log gets modify events, no hash;
  - a second edit of /etc/good.conf carries a unified diff that `patch`
    applies to the first version, giving the final file.

usage: test_daemon_hash.py --build-dir BUILD
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE.parent / "infer"))
import guest  # noqa: E402
import infer_oracle as oracle  # noqa: E402

GOOD = b"PermitRootLogin no\nPasswordAuthentication no\n"

WORKLOAD = r"""
mkdir -p etc usr/bin var/log
echo GUEST-READY
read -r go < /dev/ttyS1
printf 'PermitRootLogin no\nPasswordAuthentication no\n' > etc/good.conf
sync
echo 'Banner /etc/issue' >> etc/motd.conf
sync
sleep 1
echo 'MaxAuthTries 3' >> etc/motd.conf
sync
echo 'echo owned' > usr/bin/tool.new
sync
mv usr/bin/tool.new usr/bin/tool
sync
yes log-line | head -c 100000 >> var/log/app.log
dd if=/dev/zero of=etc/huge.bin bs=65536 count=32 2>/dev/null
sync
echo HASH-WORKLOAD-DONE
read -r stop < /dev/ttyS1
sync
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    env = guest.Env.from_environment(args.build_dir)
    work = guest.workdir_for(args.build_dir, "daemon_hash")
    sock = str(work / "daemon.sock")
    state = Path(f"/dev/shm/dsvmi-test-daemon-hash-{os.getpid()}")
    disk = guest.make_ext4(work / "disk.img", 64, {
        "etc/good.conf": b"PermitRootLogin yes\n",
        "etc/motd.conf": b"# motd\n",
        "usr/bin/tool": b"#!/bin/sh\necho original\n",
        "var/log/app.log": b"first\n",
    })
    chain = guest.DiskChain(disk, fmt="raw", prefix="vm")
    vm = guest.Guest(env, work, WORKLOAD, chain, control=True)
    policy = work / "hash.policy"
    policy.write_text("mode = low-overhead\nglob = /var/log/**\nhash = /etc/**\nhash = /usr/bin/**\nhash_max = 1M\n"
                      "diff_max = 4K\ndiff_bytes = 2K\n")
    known = work / "known.sha256"
    (work / "good.conf").write_bytes(GOOD)
    known.write_text(subprocess.run(["sha256sum", "good.conf"], cwd=work, capture_output=True, text=True,
                                    check=True).stdout)
    daemon = subprocess.Popen([env.dsvmi(), "daemon", "--socket", sock, "--state-dir", str(state)],
                              stderr=open(work / "daemon.log", "w"), env=env.process_env())
    watch = None

    def cli(*a, expect=0):
        r = subprocess.run([env.dsvmi(), *a, "--socket", sock], capture_output=True, text=True, timeout=300)
        print(f"$ dsvmi {' '.join(a)} -> {r.returncode}\n{r.stdout}{r.stderr}".rstrip())
        assert r.returncode == expect, f"dsvmi {a}: exit {r.returncode}, wanted {expect}: {r.stderr}"
        return r

    try:
        vm.start()
        vm.wait_for_console("GUEST-READY", 120)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, "daemon socket never appeared"
            time.sleep(0.05)
        name = "h1:vm:vda"
        cli("attach", "--qmp", str(vm.qmp_path), "--node", chain.fmt_node, "--name", name, "--policy", str(policy))
        st = {a["name"]: a for a in json.loads(cli("status", "--json").stdout)}[name]
        assert st["hash"] == ["/etc/**", "/usr/bin/**"], st
        pid = st.get("engine_pid")

        changed = work / "changed.policy"
        changed.write_text("mode = low-overhead\nglob = /var/log/**\nhash = /etc/**\n")
        r = cli("policy", "set", name, str(changed), expect=1)
        assert "fixed while attached" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        st = {a["name"]: a for a in json.loads(cli("status", "--json").stdout)}[name]
        assert st.get("engine_pid") == pid and st["state"] != "failed", st

        watch_path = work / "watch.jsonl"
        watch = subprocess.Popen([env.dsvmi(), "watch", "h1:*:/**", "--known", str(known), "--socket", sock],
                                 stdout=open(watch_path, "w"), stderr=open(work / "watch.err", "w"))
        deadline = time.monotonic() + 120
        while st.get("catching_up"):
            assert time.monotonic() < deadline, "the engine never caught up"
            time.sleep(0.1)
            st = {a["name"]: a for a in json.loads(cli("status", "--json").stdout)}[name]
        time.sleep(0.5)  # subscribed before the guest writes
        vm.send_control("go")
        vm.wait_for_console("HASH-WORKLOAD-DONE", 240)

        def events():
            return [json.loads(l) for l in watch_path.read_text().splitlines() if l.strip()]

        deadline = time.monotonic() + 60
        while not any(e.get("event") == "hash" and e.get("path") == "/etc/huge.bin" for e in events()):
            assert time.monotonic() < deadline, f"no hash event for /etc/huge.bin: {events()[-5:]}"
            time.sleep(0.2)
        vm.send_control("stop")
        vm.wait(timeout=120)
        cli("detach", name)
    finally:
        if watch is not None:
            watch.terminate()
            watch.wait(timeout=10)
        vm.kill()
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        subprocess.run(["rm", "-rf", str(state)])

    evs = events()
    hashes = [e for e in evs if e.get("event") == "hash"]
    final = oracle.debugfs_tree(disk)
    dump = oracle.rdump(disk, work / "rdump-final")
    last = {}
    for e in hashes:
        last[e["path"]] = e
    checked = 0
    for p, f in sorted(final.items()):
        if f["type"] != "file" or not (p.startswith("/etc/") or p.startswith("/usr/bin/")):
            continue
        e = last.get(p)
        assert e is not None, f"{p}: no hash event reached the watcher"
        if f["size"] > 1 << 20:
            assert e.get("hash_skipped") and "sha256" not in e, f"{p}: over hash_max but {e}"
            continue
        sha = oracle.sha256sum(dump / p.lstrip("/"))
        assert e.get("sha256") == sha, f"{p}: watcher's last hash {e.get('sha256')} != sha256sum {sha}"
        checked += 1
    assert checked == 3, f"checked {checked} files"
    motd = [e for e in hashes if e["path"] == "/etc/motd.conf"]
    assert motd and motd[-1].get("diff"), f"no diff for the second edit of /etc/motd.conf: {motd}"
    prev = next(e for e in reversed(motd[:-1]) if "sha256" in e)
    cands = [b"# motd\n", b"# motd\nBanner /etc/issue\n"]
    base = next((c for c in cands if hashlib.sha256(c).hexdigest() == prev["sha256"]), None)
    assert base is not None, f"/etc/motd.conf's previous hash is of no expected version: {prev}"
    (work / "motd.base").write_bytes(base)
    (work / "motd.diff").write_text(motd[-1]["diff"])
    subprocess.run(["patch", "-s", str(work / "motd.base"), str(work / "motd.diff")], check=True)
    assert (work / "motd.base").read_bytes() == (dump / "etc/motd.conf").read_bytes(), "patched != final"
    good, tool = last["/etc/good.conf"], last["/usr/bin/tool"]
    assert good.get("known") is True and good.get("known_as") == "good.conf", good
    assert tool.get("known") is False, tool
    # The replaced tool is a new file (a new inode): nothing to diff against.
    assert "diff" not in tool, tool
    assert not [e for e in hashes if e["path"].startswith("/var/log/")], "a watched, unhashed file got a hash"
    assert any(e.get("event") == "modify" and e.get("path") == "/var/log/app.log" for e in evs), "no log modify"
    print(f"{len(hashes)} hash events; last hash of /etc/good.conf (known) and /usr/bin/tool (not known) "
          f"== sha256sum of the final image; /etc/huge.bin skipped over hash_max")
    print("PASS daemon_hash")


if __name__ == "__main__":
    try:
        main()
    except guest.EnvError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)

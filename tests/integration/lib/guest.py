"""Boot dsvmi's test guest (tests/guest/build.sh) under the patched QEMU.

Stdlib only. A test builds an ext4 image, writes a workload script, and boots:

    env = guest.Env.from_environment()          # fails if a variable is missing
    img = guest.make_ext4(work / "disk.img", 64, {"etc/motd": b"hi\\n"})
    chain = guest.DiskChain(img, fmt="raw",
                            dsvmi={"ring": ring_path, "gate": gate_path})
    vm = guest.Guest(env, work, "echo hi > /mnt/a; sync", chain)
    vm.start()                                  # QEMU runs; vm.qmp() to steer it
    console = vm.wait(timeout=120)              # raises GuestError on any failure

The guest's /init (tests/guest/init) mounts /dev/vda on /mnt, runs the
workload with `sh -e` in /mnt, syncs, unmounts and powers off; it prints
DSVMI-WORKLOAD-OK or DSVMI-WORKLOAD-FAIL rc=N and a DSVMI-IO-ERROR line for
every block/ext4 error in dmesg. wait() turns all of that into an exception
carrying the console's tail.
"""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qmp as qmp_mod  # noqa: E402  (tests/integration/lib/qmp.py)


class GuestError(Exception):
    """The guest failed, timed out or reported an I/O error. str() ends with
    the console's last lines."""


class EnvError(Exception):
    """A required environment variable is missing: the test must FAIL."""


# -- environment ---------------------------------------------------------------


class Env:
    """Where the patched QEMU, the guest and the cache live (scripts/test.sh
    exports these; see docs/testing.md to set them by hand)."""

    def __init__(self, qemu_prefix, guest_dir, cache_dir, build_dir=None):
        self.qemu_prefix = Path(qemu_prefix)
        self.guest_dir = Path(guest_dir)
        self.cache_dir = Path(cache_dir)
        self.build_dir = Path(build_dir) if build_dir else None

    @classmethod
    def from_environment(cls, build_dir=None):
        """Reads the DSVMI_* variables; `build_dir` is the dsvmi CMake build
        (its build/dsvmi and lib/libdsvmi-producer.so, which the patched QEMU
        loads through LD_LIBRARY_PATH)."""
        missing = [v for v in ("DSVMI_QEMU_PREFIX", "DSVMI_GUEST_DIR", "DSVMI_CACHE_DIR")
                   if not os.environ.get(v)]
        if missing:
            raise EnvError("missing environment: " + ", ".join(missing) +
                           " (scripts/test.sh exports them; see docs/testing.md)")
        env = cls(os.environ["DSVMI_QEMU_PREFIX"], os.environ["DSVMI_GUEST_DIR"],
                  os.environ["DSVMI_CACHE_DIR"], build_dir)
        for f in ("vmlinuz", "initrd.gz"):
            if not (env.guest_dir / f).is_file():
                raise EnvError(f"{env.guest_dir / f} missing: run tests/guest/build.sh")
        for tool in ("qemu-system-x86_64", "qemu-img"):
            if not os.access(env.tool(tool), os.X_OK):
                raise EnvError(f"{env.tool(tool)} missing: run qemu-patches/build.sh")
        return env

    def tool(self, name):
        return str(self.qemu_prefix / "bin" / name)

    def dsvmi(self):
        return str(self.build_dir / "dsvmi")

    def process_env(self):
        """os.environ plus LD_LIBRARY_PATH=<build>/lib for QEMU's tools."""
        e = dict(os.environ)
        if self.build_dir is not None:
            lib = str(self.build_dir / "lib")
            e["LD_LIBRARY_PATH"] = lib + (":" + e["LD_LIBRARY_PATH"] if e.get("LD_LIBRARY_PATH") else "")
        return e

    def firmware_dir(self):
        """A -L folder with SeaBIOS and the -kernel option ROMs: the prefix's
        own share/qemu when it has them, else the copy the guest build made."""
        share = self.qemu_prefix / "share" / "qemu"
        if (share / "bios-256k.bin").is_file() and (share / "linuxboot_dma.bin").is_file():
            return str(share)
        return str(self.guest_dir / "firmware")


def run(cmd, check=True, **kw):
    """subprocess.run with captured text output and a readable failure."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {r.returncode}\n"
                           f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}")
    return r


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- images --------------------------------------------------------------------


def make_ext4(path, size_mib, tree=None, block_size=4096, extra_mkfs=()):
    """Creates a raw ext4 image of `size_mib` MiB at `path`, populated from
    `tree` ({relative path: bytes, or None for a directory}) with
    `mkfs.ext4 -d`. Inode tables and the journal are initialised up front, so
    the guest's kernel doesn't zero them lazily behind the workload's back."""
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as src:
        for rel, content in (tree or {}).items():
            p = Path(src) / rel
            if content is None:
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(content)
        if path.exists():
            path.unlink()
        run(["mkfs.ext4", "-q", "-F", "-b", block_size, "-d", src,
             "-E", "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
             *extra_mkfs, path, f"{size_mib}M"])
    return path


def e2fsck_clean(image):
    """Returns (clean, output) of `e2fsck -fn` on a raw image."""
    r = run(["e2fsck", "-fn", image], check=False)
    return r.returncode == 0, r.stdout + r.stderr


def debugfs(image, request):
    """Output of `debugfs -R request image` (read-only)."""
    return run(["debugfs", "-R", request, image]).stdout


# -- initramfs with a workload --------------------------------------------------


def _cpio_newc(files):
    """A newc cpio archive of {name: (mode, bytes)} (regular files only)."""
    out = bytearray()

    def entry(ino, name, mode, data):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.extend(hdr.encode() + nb)
        out.extend(b"\0" * ((4 - len(out) % 4) % 4))
        out.extend(data)
        out.extend(b"\0" * ((4 - len(out) % 4) % 4))

    for i, (name, (mode, data)) in enumerate(sorted(files.items()), start=1):
        entry(i, name, mode, data)
    entry(0, "TRAILER!!!", 0, b"")
    return bytes(out)


def make_initrd(guest_dir, workload, out_path):
    """Writes the guest's base initrd with /workload.sh appended as a second
    gzip'd cpio archive (the kernel unpacks concatenated archives in order)."""
    base = (Path(guest_dir) / "initrd.gz").read_bytes()
    extra = gzip.compress(_cpio_newc({"workload.sh": (0o100755, workload.encode())}), mtime=0)
    Path(out_path).write_bytes(base + extra)
    return out_path


# -- the disk's -blockdev chain -------------------------------------------------


class DiskChain:
    """file node -> format node (raw|qcow2) [-> dsvmi filter] as -blockdev
    options. `top` is the node the virtio-blk device uses. The file node is
    opened with O_DIRECT (cache=none, as in facts.md) and every node passes
    discards down (discard=unmap), so a guest discard punches a hole."""

    def __init__(self, image, fmt="raw", dsvmi=None, prefix="disk"):
        self.image = str(image)
        self.fmt = fmt
        self.prefix = prefix
        self.file_node = f"{prefix}-file"
        self.fmt_node = f"{prefix}-{fmt}"
        self.filter_node = f"{prefix}-dsvmi"
        self.dsvmi = dict(dsvmi) if dsvmi else None

    def file_opts(self):
        return {"driver": "file", "node-name": self.file_node, "filename": self.image,
                "cache": {"direct": True, "no-flush": False}, "discard": "unmap"}

    def format_opts(self):
        return {"driver": self.fmt, "node-name": self.fmt_node, "file": self.file_node,
                "discard": "unmap"}

    def filter_opts(self, **options):
        """Options for a dsvmi filter above the format node (also what a live
        attach passes to blockdev-add)."""
        opts = {"driver": "dsvmi", "node-name": self.filter_node, "file": self.fmt_node,
                "discard": "unmap"}
        opts.update(options)
        return opts

    @property
    def top(self):
        return self.filter_node if self.dsvmi is not None else self.fmt_node

    def qemu_args(self):
        nodes = [self.file_opts(), self.format_opts()]
        if self.dsvmi is not None:
            nodes.append(self.filter_opts(**self.dsvmi))
        args = []
        for n in nodes:
            args += ["-blockdev", json.dumps(n)]
        return args


# -- the guest -----------------------------------------------------------------


MARK_OK = "DSVMI-WORKLOAD-OK"
MARK_FAIL = "DSVMI-WORKLOAD-FAIL"
MARK_IO_ERROR = "DSVMI-IO-ERROR"


class Guest:
    """One QEMU process running the test guest with `workload` (shell text) on
    the disk `chain`. Files go to `workdir`: console.log, qmp.sock,
    initrd-workload.gz, qemu.stderr."""

    DEVICE_ID = "vdisk0"

    def __init__(self, env, workdir, workload, chain, memory_mib=512, extra_append="",
                 extra_args=(), control=False):
        self.env = env
        self.workdir = Path(workdir)
        self.workload = workload
        self.chain = chain
        self.memory_mib = memory_mib
        self.extra_append = extra_append
        self.extra_args = list(extra_args)
        self.console_path = self.workdir / "console.log"
        self.qmp_path = self.workdir / "qmp.sock"
        self.stderr_path = self.workdir / "qemu.stderr"
        self.control = control
        self.control_path = self.workdir / "control.sock"
        self.proc = None
        self._qmp = None
        self._control_sock = None

    def command(self):
        initrd = make_initrd(self.env.guest_dir, self.workload, self.workdir / "initrd-workload.gz")
        append = "console=ttyS0 quiet panic=-1"
        if self.extra_append:
            append += " " + self.extra_append
        return [self.env.tool("qemu-system-x86_64"),
                "-M", "q35", "-m", str(self.memory_mib), "-accel", "tcg",
                "-L", self.env.firmware_dir(),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", f"file:{self.console_path}",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-kernel", str(self.env.guest_dir / "vmlinuz"), "-initrd", str(initrd),
                "-append", append,
                *self.chain.qemu_args(),
                "-device", f"virtio-blk-pci,id={self.DEVICE_ID},drive={self.chain.top}",
                *self.control_args(),
                *self.extra_args]

    def control_args(self):
        """With control=True the guest gets a second serial port, /dev/ttyS1,
        wired to a unix socket: send_control() writes a line the workload can
        `read -r line < /dev/ttyS1` (e.g. to wait for the host's go-ahead)."""
        if not self.control:
            return []
        return ["-chardev", f"socket,id=control,path={self.control_path},server=on,wait=off",
                "-device", "isa-serial,chardev=control"]

    def send_control(self, line, timeout=30.0):
        import socket
        if self._control_sock is None:
            deadline = time.monotonic() + timeout
            while True:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(str(self.control_path))
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    s.close()
                    if time.monotonic() > deadline:
                        raise self._error("control socket never appeared")
                    time.sleep(0.05)
            self._control_sock = s
        self._control_sock.sendall(line.encode() + b"\n")

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        for p in (self.console_path, self.qmp_path, self.control_path):
            if p.exists():
                p.unlink()
        cmd = self.command()
        (self.workdir / "qemu.cmdline").write_text(" ".join(map(str, cmd)) + "\n")
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=self.env.process_env())
        return self

    def qmp(self, timeout=30.0):
        """The QMP connection (connected on first use)."""
        if self._qmp is None:
            self._qmp = qmp_mod.QMP.connect(str(self.qmp_path), timeout=timeout)
        return self._qmp

    def console(self):
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_console(self, text, timeout):
        """Waits until `text` appears on the console (e.g. a marker the
        workload prints); raises GuestError if QEMU exits or time runs out."""
        self.wait_until(lambda console: text in console, f"'{text}'", timeout)

    def wait_until(self, predicate, what, timeout):
        """Waits until predicate(console text) is true; returns its value.
        Raises GuestError if QEMU exits first or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.console())
            if value:
                return value
            if self.proc.poll() is not None:
                raise self._error(f"QEMU exited ({self.proc.returncode}) before {what}")
            if time.monotonic() >= deadline:
                raise self._error(f"{what} not seen within {timeout} s")
            time.sleep(0.05)

    def wait(self, timeout=180.0):
        """Waits for the guest to power off; returns the console text. Raises
        GuestError on timeout (QEMU killed), a non-zero QEMU exit, a missing
        DSVMI-WORKLOAD-OK, or any DSVMI-IO-ERROR line."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self._error(f"guest did not power off within {timeout} s (killed)")
        finally:
            self._close()
        text = self.console()
        if self.proc.returncode != 0:
            raise self._error(f"QEMU exited with {self.proc.returncode}")
        if MARK_IO_ERROR in text:
            raise self._error("the guest kernel logged an I/O error")
        if MARK_OK not in text:
            fail = [l for l in text.splitlines() if l.startswith(MARK_FAIL)]
            raise self._error(fail[-1] if fail else "workload did not report " + MARK_OK)
        return text

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._close()

    def _close(self):
        if self._control_sock is not None:
            self._control_sock.close()
            self._control_sock = None
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None

    def _error(self, what):
        tail = "\n".join(self.console().splitlines()[-40:])
        try:
            err = self.stderr_path.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            err = ""
        return GuestError(f"{what}\n--- console tail ({self.console_path}) ---\n{tail}"
                          f"\n--- qemu stderr ---\n{err}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


# -- capture ---------------------------------------------------------------------


class Capture:
    """`dsvmi capture --json` draining `ring` into `trace` in the background.
    The ring is created by capture (if absent) before start() returns (its
    ready record, docs/cli-json.md), so QEMU can open it. stop() sends
    SIGTERM and returns the stats record."""

    def __init__(self, env, ring, trace, capacity="64M", log=None):
        self.env = env
        self.ring = str(ring)
        self.trace = str(trace)
        self.capacity = capacity
        self.log_path = Path(log) if log else Path(trace).with_suffix(".capture.log")
        self.records_path = self.log_path.with_suffix(".jsonl")
        self.proc = None

    def start(self, timeout=30.0):
        self._log = open(self.log_path, "w")
        self._records = open(self.records_path, "w")
        self.proc = subprocess.Popen(
            [self.env.dsvmi(), "capture", "--json", "--ring", self.ring, "--out", self.trace,
             "--capacity", self.capacity],
            stdin=subprocess.DEVNULL, stdout=self._records, stderr=self._log)
        deadline = time.monotonic() + timeout
        while not self._record("ready"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"dsvmi capture exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"dsvmi capture not ready in {timeout} s: {self.log()}")
            time.sleep(0.05)
        return self

    def _record(self, kind):
        """The last complete {"capture": kind} record printed so far, or None."""
        found = None
        try:
            text = self.records_path.read_text(errors="replace")
        except FileNotFoundError:
            return None
        for line in text.splitlines(keepends=True):
            if line.endswith("\n"):
                r = json.loads(line)
                if r.get("capture") == kind:
                    found = r
        return found

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self):
        """SIGKILL: the consumer vanishes without a word (engine crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def stop(self, timeout=30.0):
        """SIGTERM, wait, check the exit code; returns the final stats record
        (docs/cli-json.md, `dsvmi capture --json`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise RuntimeError(f"dsvmi capture ignored SIGTERM for {timeout} s: {self.log()[-2000:]}")
        finally:
            self._close()
        if rc != 0:
            raise RuntimeError(f"dsvmi capture exited {rc}: {self.log()[-2000:]}")
        stats = self._record("stats")
        if not stats:
            raise RuntimeError(f"dsvmi capture printed no stats record: {self.log()[-2000:]}")
        return stats

    def _close(self):
        for name in ("_log", "_records"):
            if getattr(self, name, None):
                getattr(self, name).close()
                setattr(self, name, None)


# -- helpers for test scripts ----------------------------------------------------


def shm_ring_path(name):
    """A ring path on tmpfs (/dev/shm): a ring in a disk-backed file would be
    written back to disk by the page cache for nothing. The file is removed
    when the test process exits."""
    return shm_path(name, "ring")


def shm_path(name, kind):
    """/dev/shm/dsvmi-test-<name>-<pid>.<kind> (a ring, a gate...), removed
    if stale and again when the test process exits."""
    import atexit
    p = Path("/dev/shm") / f"dsvmi-test-{name}-{os.getpid()}.{kind}"
    remove_quietly(p)
    atexit.register(remove_quietly, p)
    return p


def remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def workdir_for(build_dir, name):
    """A fresh scratch folder build/tests/integration-work/<name> (on disk,
    not tmpfs: the images are opened with O_DIRECT)."""
    d = Path(build_dir) / "tests" / "integration-work" / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d

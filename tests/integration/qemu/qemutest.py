"""Shared pieces of the QEMU filter integration tests (stdlib only).

Every test gets `--build-dir` (the dsvmi CMake build: build/dsvmi and
build/lib/libdsvmi-producer.so) from ctest and DSVMI_QEMU_PREFIX (the patched
QEMU from qemu-patches/build.sh) from the environment. A missing one is a
FAILURE with a message saying how to get it, never a skip.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure(f"{what}: got {got!r}, want {want!r}")


class Env:
    def __init__(self, build_dir, qemu_prefix, work):
        self.build_dir = Path(build_dir).resolve()
        self.qemu_prefix = Path(qemu_prefix)
        self.work = Path(work)
        self.ring_tool = str(self.build_dir / "tests" / "qemu_ring_tool")
        self.env = dict(os.environ)
        lib = str(self.build_dir / "lib")
        old = self.env.get("LD_LIBRARY_PATH")
        self.env["LD_LIBRARY_PATH"] = lib + (":" + old if old else "")

    def tool(self, name):
        return str(self.qemu_prefix / "bin" / name)

    def run(self, argv, check_rc=True, timeout=300, input=None):
        """Runs argv with the producer library on LD_LIBRARY_PATH; returns
        CompletedProcess (text). A non-zero exit fails the test when
        check_rc."""
        p = subprocess.run([str(a) for a in argv], env=self.env, capture_output=True,
                           text=True, timeout=timeout, input=input)
        if check_rc and p.returncode != 0:
            raise TestFailure(f"{' '.join(map(str, argv))} exited {p.returncode}\n"
                              f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}")
        return p

    def popen(self, argv, **kw):
        return subprocess.Popen([str(a) for a in argv], env=self.env, **kw)

    # -- the engine's side: rings and gates through qemu_ring_tool ---------

    def tool_run(self, *args, **kw):
        return self.run([self.ring_tool, *args], **kw)

    def ring_create(self, path, capacity):
        self.tool_run("ring-create", path, capacity)

    def ring_frames(self, path):
        """Drains the ring at `path`; returns (frames, stats). A frame is a
        dict: seq, kind ("write", "write_zeroes", "discard", "flush",
        "lost"), offset, length, payload (bytes, or None), and for Lost
        frames lost_frames, lost_bytes, first_lost_seq."""
        p = self.tool_run("ring-dump", path)
        frames, stats = [], None
        for line in p.stdout.splitlines():
            obj = json.loads(line)
            if "stats" in obj:
                stats = obj["stats"]
                continue
            hx = obj.pop("payload_hex", None)
            obj["payload"] = bytes.fromhex(hx) if hx is not None else None
            frames.append(obj)
        check(stats is not None, "ring-dump printed no stats")
        check_eq(stats["invalid_records"], 0, f"invalid records in the ring ({p.stderr})")
        return frames, stats

    def gate_create(self, path, disk_size, grain, mode, ranges=()):
        self.tool_run("gate-create", path, disk_size, grain, mode,
                      *[f"{a}+{n}" for a, n in ranges])

    def gate_set(self, path, mode, ranges=()):
        self.tool_run("gate-set", path, mode, *[f"{a}+{n}" for a, n in ranges])

    def gate_stat(self, path):
        return json.loads(self.tool_run("gate-stat", path).stdout)

    # -- the QEMU side --------------------------------------------------------

    def qemu_io(self, image_opts, commands, check_rc=True, cache="writeback"):
        """Runs qemu-io on an --image-opts string with `commands` (each one
        -c); returns the CompletedProcess. qemu-io exits 0 even when a
        command fails, so failures are also looked for in its output.
        cache: qemu-io -t; its own default, writethrough, makes every write
        FUA (a write then a flush)."""
        argv = [self.tool("qemu-io"), "-t", cache, "--image-opts", image_opts]
        for c in commands:
            argv += ["-c", c]
        p = self.run(argv, check_rc=check_rc)
        if check_rc:
            for line in (p.stdout + p.stderr).splitlines():
                if "failed" in line.lower() or "error" in line.lower():
                    raise TestFailure(f"qemu-io reported: {line}\n{p.stdout}\n{p.stderr}")
        return p


def filter_opts(image, ring, gate=None, fmt="raw", extra=""):
    """--image-opts for dsvmi above a format node above a file node."""
    s = (f"driver=dsvmi,ring={ring},discard=unmap,"
         f"file.driver={fmt},file.file.driver=file,file.file.filename={image}")
    if gate:
        s += f",gate={gate}"
    if extra:
        s += "," + extra
    return s


def plain_opts(image, fmt="raw"):
    return f"driver={fmt},discard=unmap,file.driver=file,file.filename={image}"


def make_image(path, size, seed=1):
    """A raw image of deterministic non-zero bytes (so zeroes and discards
    are visible)."""
    import random
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.write(rnd.randbytes(size))


def main(test_fn):
    """Parses --build-dir, checks the environment, runs test_fn(env) in a
    temporary folder; prints PASS/FAIL and exits 0/1."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    name = Path(sys.argv[0]).stem
    prefix = os.environ.get("DSVMI_QEMU_PREFIX")
    if not prefix:
        print(f"FAIL {name}: DSVMI_QEMU_PREFIX is not set; run "
              "`export DSVMI_QEMU_PREFIX=$(qemu-patches/build.sh --print-prefix build)` "
              "(scripts/test.sh does it)", file=sys.stderr)
        sys.exit(1)
    for tool in ("qemu-io", "qemu-img", "qemu-storage-daemon", "qemu-system-x86_64"):
        if not os.access(Path(prefix) / "bin" / tool, os.X_OK):
            print(f"FAIL {name}: {prefix}/bin/{tool} missing: run qemu-patches/build.sh",
                  file=sys.stderr)
            sys.exit(1)
    build = Path(args.build_dir)
    for need in (build / "tests" / "qemu_ring_tool", build / "lib" / "libdsvmi-producer.so"):
        if not need.exists():
            print(f"FAIL {name}: {need} missing: build dsvmi first", file=sys.stderr)
            sys.exit(1)
    work = tempfile.mkdtemp(prefix=f"dsvmi-{name}-")
    env = Env(build, prefix, work)
    try:
        test_fn(env)
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        traceback.print_exc()
        print(f"FAIL {name}: {e}", file=sys.stderr)
        print(f"(work folder kept: {work})", file=sys.stderr)
        sys.exit(1)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"PASS {name}")

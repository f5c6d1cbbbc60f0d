#!/usr/bin/env python3
"""Every subcommand `dsvmi help` lists answers for its usage the same way
(engine/cli/usage.h): `--help` prints a usage naming the command on stdout,
nothing on stderr, exit 0; an unknown option prints the usage on stderr,
nothing on stdout, exit 2. The command list comes from `dsvmi help` itself,
so a new subcommand is checked without editing this test."""
import argparse
import subprocess
import sys


def commands(dsvmi):
    out = subprocess.run([dsvmi, "help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"dsvmi help exited {out.returncode}: {out.stderr}"
    names, in_list = [], False
    for line in out.stdout.splitlines():
        if line.strip() == "commands:":
            in_list = True
        elif in_list and line.startswith("  ") and line.split():
            names.append(line.split()[0])
        elif in_list and not line.strip() and names:
            break
    assert len(names) >= 10, f"dsvmi help listed only {names}"
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    dsvmi = f"{ap.parse_args().build_dir}/dsvmi"
    failures = []
    names = commands(dsvmi)
    for name in names:
        for flag in ("--help", "-h"):
            r = subprocess.run([dsvmi, name, flag], capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            if r.returncode != 0 or not r.stdout.startswith("usage:") or f"dsvmi {name}" not in r.stdout \
                    or r.stderr:
                failures.append(f"{name} {flag}: exit {r.returncode}, stdout {r.stdout[:80]!r}, "
                                f"stderr {r.stderr[:80]!r}")
        r = subprocess.run([dsvmi, name, "--no-such-option-xyz"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 2 or r.stdout or "usage" not in r.stderr:
            failures.append(f"{name} --no-such-option-xyz: exit {r.returncode}, stdout {r.stdout[:80]!r}, "
                            f"stderr {r.stderr[:80]!r}")
    r = subprocess.run([dsvmi, "no-such-command"], capture_output=True, text=True, timeout=30)
    if r.returncode != 2 or "usage" not in r.stderr:
        failures.append(f"no-such-command: exit {r.returncode}")
    for f in failures:
        print("FAIL", f)
    print(f"{len(names)} commands checked, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The guest side of the end-to-end benchmarks: shell text run inside the
Debian root file system (bench/e2e/rootfs.sh) after the test guest's
initramfs (tests/guest/init) mounted it on /mnt.

Every phase prints two console lines the host timestamps (the host's clock
times the phases, as in the seed's §2.8.1; the guest's uptime rides along
for a cross-check):

    DSVMI-PHASE-BEGIN <workload>.<phase> <sectors written> <guest uptime>
    DSVMI-PHASE-END   <workload>.<phase> <sectors written> <guest uptime>

<sectors written> is field 7 of /sys/block/vda/stat (512-byte units): the
guest's own count of what it wrote. Before BEGIN the guest syncs and drops
its caches (as the seed did); before END it syncs, so a phase's time
includes getting its writes to the disk, through the filter.
"""

# name -> {size: {...}}: sizes per suite size ("tiny" is the smoke test's).
SIZES = {
    "andrew": {
        # make: "files" compiles a few sources directly (zlib's configure
        # alone takes minutes of guest CPU under TCG); "libz" runs
        # ./configure && make libz.a.
        "tiny": {"copies": 1, "make": "files"},
        "quick": {"copies": 1, "make": "files"},
        "full": {"copies": 2, "make": "libz"},
    },
    "postmark": {
        "tiny": {"files": 200, "transactions": 500},
        "quick": {"files": 1000, "transactions": 4000},
        # The seed's configuration (§2.8.5, after [117]).
        "full": {"files": 5000, "transactions": 20000},
    },
    "bonnie": {
        "tiny": {"size_mib": 64, "ram_mib": 32, "files_k": 1},
        "quick": {"size_mib": 128, "ram_mib": 64, "files_k": 1},
        "full": {"size_mib": 512, "ram_mib": 256, "files_k": 4},
    },
    "install": {
        "tiny": {"set": "quick"},
        "quick": {"set": "quick"},
        # Not the "full" set (apache2, php, git + dependencies): measured
        # 333 s per boot under TCG here, which alone would push the suite
        # (4 modes x 3 repetitions) past an hour. The full set stays in the
        # root file system for a machine with KVM (--install-set full).
        "full": {"set": "quick"},
    },
}
WORKLOADS = list(SIZES)

PREAMBLE = r"""
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive
wstat() { read -r a b c d e f g rest < /sys/block/vda/stat; echo "$g"; }
up() { cut -d' ' -f1 /proc/uptime; }
begin() { sync; echo 3 > /proc/sys/vm/drop_caches; echo "DSVMI-PHASE-BEGIN $1 $(wstat) $(up)"; }
end() { sync; echo "DSVMI-PHASE-END $1 $(wstat) $(up)"; }
out() { sed "s/^/DSVMI-OUT $1: /"; }
mkdir -p /bench/tmp
"""


def andrew(p):
    if p["make"] == "files":
        make = "(cd $dst/c1 && cc -O2 -c adler32.c compress.c crc32.c uncompr.c && ls *.o > /dev/null)"
    else:
        make = "(cd $dst/c1 && ./configure > /dev/null && make -j1 libz.a > /dev/null)"
    # Modified Andrew Benchmark shape (docs/benchmarks.md) on Debian's zlib source
    # tree, copied `copies` times side by side for MakeDir/Copy/ScanDir/ReadAll.
    return rf"""
src=/bench/src/tree
dst=/bench/tmp/andrew
rm -rf $dst; mkdir -p $dst; sync
begin andrew.makedir
for i in $(seq {p['copies']}); do (cd $src && find . -type d) | (cd $dst && mkdir -p c$i && cd c$i && xargs mkdir -p); done
end andrew.makedir
begin andrew.copy
for i in $(seq {p['copies']}); do cp -a $src/. $dst/c$i/; done
end andrew.copy
begin andrew.scandir
find $dst -exec stat -c '%i %s %Y' {{}} + > /dev/null
ls -lR $dst > /dev/null
end andrew.scandir
begin andrew.readall
find $dst -type f -exec cat {{}} + > /dev/null
end andrew.readall
begin andrew.make
{make}
end andrew.make
"""


def postmark(p):
    return rf"""
rm -rf /bench/tmp/pm; mkdir -p /bench/tmp/pm
cat > /bench/tmp/pm.cfg <<EOF
set location /bench/tmp/pm
set size 512 328072
set read 4096
set write 4096
set number {p['files']}
set transactions {p['transactions']}
run
quit
EOF
begin postmark.run
postmark /bench/tmp/pm.cfg 2>&1 | grep -E 'seconds|transactions per second|files created|read|written' | out postmark
end postmark.run
rm -rf /bench/tmp/pm /bench/tmp/pm.cfg
"""


def bonnie(p):
    # -f skips the per-character tests (pure guest CPU under TCG); -q prints
    # the CSV result line on stdout.
    return rf"""
rm -rf /bench/tmp/bonnie; mkdir -p /bench/tmp/bonnie
begin bonnie.run
bonnie++ -q -f -u root -d /bench/tmp/bonnie -s {p['size_mib']} -r {p['ram_mib']} -n {p['files_k']} 2>/dev/null | tail -1 | out bonnie
end bonnie.run
rm -rf /bench/tmp/bonnie
"""


def install(p):
    # Software install (docs/benchmarks.md): dpkg -i of .debs downloaded beforehand
    # (every dependency the base lacks is in the set); policy-rc.d keeps the
    # daemons from starting.
    return rf"""
begin install.dpkg
dpkg -i /bench/debs-{p['set']}/*.deb > /bench/tmp/dpkg.log 2>&1 || {{ tail -20 /bench/tmp/dpkg.log | out install; exit 1; }}
end install.dpkg
echo "$(ls /bench/debs-{p['set']} | wc -l) packages installed" | out install
"""


BUILDERS = {"andrew": andrew, "postmark": postmark, "bonnie": bonnie, "install": install}


def sizes(workloads, size, install_set=None):
    """{workload: parameters} for a suite size; install_set overrides the
    package set of the install workload."""
    out = {w: dict(SIZES[w][size]) for w in workloads}
    if install_set and "install" in out:
        out["install"]["set"] = install_set
    return out


def guest_script(workloads, size, install_set=None):
    """Shell text for /workload.sh: sets up the chroot into the Debian root
    file system on /mnt, runs the workloads in order, tears it down."""
    params = sizes(workloads, size, install_set)
    inner = PREAMBLE + "".join(BUILDERS[w](params[w]) for w in workloads)
    inner += 'echo "DSVMI-SUITE-DONE"\n'
    return (
        "mount -t proc proc /mnt/proc\n"
        "mount -t sysfs sys /mnt/sys\n"
        "mount -o bind /dev /mnt/dev\n"
        "mkdir -p /mnt/bench/tmp\n"
        "cat > /mnt/bench/tmp/run.sh <<'DSVMI_EOF'\n" + inner + "DSVMI_EOF\n"
        "rc=0\n"
        "chroot /mnt /bin/sh -e /bench/tmp/run.sh || rc=$?\n"
        "umount /mnt/dev /mnt/sys /mnt/proc\n"
        "exit $rc\n")

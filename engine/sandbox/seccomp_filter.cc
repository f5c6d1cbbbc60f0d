// The seccomp allow-list (docs/security.md): every syscall the engine and
// the crawl make once sandboxed, measured with `strace -f -c` over the
// trace, ring and daemon tests; anything else kills the process (SIGSYS).
// Not on it, on purpose: execve/execveat, socket/connect/bind, ptrace,
// process_vm_*, clone/fork (no threads are started after the sandbox),
// mount, setuid and friends, bpf, keyctl.
#include <fcntl.h>
#include <seccomp.h>
#include <sys/ioctl.h>

#include <cstring>

#include "sandbox_internal.h"

namespace dsvmi::sandbox_internal {
namespace {

const char* const kAllowed[] = {
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    // I/O on descriptors already open (ring, gate, index, disk, pipe)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "lseek", "close", "fstat", "newfstatat", "statx", "fcntl", "fsync", "fdatasync", "ftruncate", "fallocate",
    "flock",
    // the NBD disk reader's already connected socket
    "recvfrom", "sendto", "recvmsg", "sendmsg", "shutdown",
    // the io_uring disk reader (engine/disk/uring_reader.cc)
    "io_uring_enter", "io_uring_register",
    // waiting: the ring's futex, poll on the NBD socket, the stats timer
    "futex", "poll", "ppoll", "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday", "sched_yield",
    // the policy file a SIGHUP re-reads (Landlock limits which files)
    "openat", "getdents64",
    // signals: stop/drain (SIGINT, SIGTERM), SIGHUP, abort()
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall", "getpid", "gettid",
    "tgkill",
    // glibc and libstdc++ housekeeping
    "getrandom", "exit", "exit_group", "set_robust_list", "rseq", "prlimit64", "getuid", "geteuid", "getgid",
    "getegid", "uname",
};

const char* const kCrawlAllowed[] = {"rename", "renameat", "renameat2", "unlink", "unlinkat", "access",
                                     "faccessat", "faccessat2", "fchmod"};

}  // namespace

Status apply_seccomp(const SandboxOptions& o, int* rules) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!ctx) return Status::error("Sandbox", "seccomp_init failed");
  int n = 0;
  auto allow = [&](const char* name) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return true;  // not on this architecture
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) != 0) return false;
    ++n;
    return true;
  };
  bool ok = true;
  for (const char* s : kAllowed) ok = ok && allow(s);
  if (o.creates_files)
    for (const char* s : kCrawlAllowed) ok = ok && allow(s);
  // ioctl: only the terminal query isatty() makes (stdio, progress output).
  // Spelled out: SCMP_A1() leaves datum_b to the compiler's zeroing.
  const scmp_arg_cmp is_tcgets{.arg = 1, .op = SCMP_CMP_EQ, .datum_a = TCGETS, .datum_b = 0};
  ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, is_tcgets) == 0;
  if (!ok) {
    seccomp_release(ctx);
    return Status::error("Sandbox", "seccomp: cannot build the allow-list");
  }
  int rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc != 0) return Status::error("Sandbox", std::string("seccomp_load: ") + std::strerror(-rc));
  *rules = n + 1;
  return Status::ok();
}

}  // namespace dsvmi::sandbox_internal

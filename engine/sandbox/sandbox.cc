// enter_sandbox: the order of the steps (docs/security.md). The user drop
// first (it needs setgroups/setuid, which seccomp then forbids), then
// no_new_privs (required for an unprivileged seccomp filter and Landlock),
// Landlock, and seccomp last so the steps before it may use any syscall.
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "sandbox_internal.h"

namespace dsvmi {

std::string SandboxReport::line() const {
  return "sandbox: user " + user + ", no_new_privs, seccomp allow-list of " + std::to_string(seccomp_rules) +
         " syscalls (others: SIGSYS), landlock " + landlock;
}

void close_inherited_fds() {
  if (::syscall(SYS_close_range, 3u, UINT_MAX, 0u) == 0) return;
  for (int fd = 3; fd < 1024; ++fd) ::close(fd);
}

Status enter_sandbox(const SandboxOptions& o, SandboxReport* r) {
  Status s;
  if (!o.drop_user) r->user = "uid " + std::to_string(::geteuid()) + " kept (writes its output as the caller)";
  else if (!(s = sandbox_internal::drop_user(&r->user))) return s;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return Status::error("Sandbox", std::string("no_new_privs: ") + std::strerror(errno));
  if (!(s = sandbox_internal::apply_landlock(o, &r->landlock_abi, &r->landlock))) return s;
  return sandbox_internal::apply_seccomp(o, &r->seccomp_rules);
}

}  // namespace dsvmi

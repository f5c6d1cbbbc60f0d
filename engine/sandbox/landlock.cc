// Landlock (docs/security.md): file access limited to the files named in
// SandboxOptions, whatever the user could otherwise open. Raw syscalls:
// glibc 2.36 has no wrappers.
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox_internal.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

namespace dsvmi::sandbox_internal {
namespace {

int ll_create(const landlock_ruleset_attr* a, size_t size, uint32_t flags) {
  return int(::syscall(__NR_landlock_create_ruleset, a, size, flags));
}

Status add_path(int ruleset, const std::string& path, uint64_t access) {
  int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return Status::error("Sandbox", "landlock: " + path + ": " + std::strerror(errno));
  landlock_path_beneath_attr pb = {};
  pb.allowed_access = access;
  pb.parent_fd = fd;
  long rc = ::syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
  int e = errno;
  ::close(fd);
  if (rc != 0) return Status::error("Sandbox", "landlock rule for " + path + ": " + std::strerror(e));
  return Status::ok();
}

}  // namespace

Status apply_landlock(const SandboxOptions& o, int* abi, std::string* why) {
  int v = ll_create(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (v < 0) {
    *abi = 0;
    *why = std::string("unavailable (") + std::strerror(errno) +
           "): file access limited by the user drop and seccomp only";
    return Status::ok();
  }
  *abi = v;
  uint64_t handled = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;  // ABI 1: bits 0..12
  if (v >= 2) handled |= LANDLOCK_ACCESS_FS_REFER;
  if (v >= 3) handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
  landlock_ruleset_attr attr = {};
  attr.handled_access_fs = handled;
  int rs = ll_create(&attr, sizeof attr, 0);
  if (rs < 0) return Status::error("Sandbox", std::string("landlock_create_ruleset: ") + std::strerror(errno));
  Status s;
  for (const auto& f : o.read_files)
    if (!(s = add_path(rs, f, LANDLOCK_ACCESS_FS_READ_FILE))) break;
  const uint64_t dir_rights = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                              LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                              (v >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0);
  for (const auto& d : o.write_dirs)
    if (s && !(s = add_path(rs, d, dir_rights))) break;
  if (s && ::syscall(__NR_landlock_restrict_self, rs, 0) != 0)
    s = Status::error("Sandbox", std::string("landlock_restrict_self: ") + std::strerror(errno));
  ::close(rs);
  if (!s) return s;
  *why = "ABI " + std::to_string(v) + ": reads beneath " + std::to_string(o.read_files.size()) + " path(s), writes beneath " +
         std::to_string(o.write_dirs.size());
  return Status::ok();
}

}  // namespace dsvmi::sandbox_internal

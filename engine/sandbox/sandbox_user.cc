// The user drop: the one step that holds on kernels without Landlock (a
// file another user owns, e.g. /etc/shadow, stays closed). docs/security.md.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox_internal.h"

namespace dsvmi {

bool sandbox_identity(unsigned* uid, unsigned* gid, std::string* name) {
  if (const passwd* p = ::getpwnam("dsvmi")) {
    *uid = p->pw_uid;
    *gid = p->pw_gid;
    *name = "dsvmi";
    return true;
  }
  const passwd* p = ::getpwnam("nobody");
  if (!p) return false;
  const group* g = ::getgrnam("nogroup");
  *uid = p->pw_uid;
  *gid = g ? g->gr_gid : p->pw_gid;
  *name = "nobody";
  return true;
}

void share_with_sandbox(const std::string& path, unsigned mode) {
  unsigned uid, gid;
  std::string name;
  if (::geteuid() != 0 || !sandbox_identity(&uid, &gid, &name)) return;
  if (::chown(path.c_str(), uid_t(-1), gid_t(gid)) == 0) ::chmod(path.c_str(), mode_t(mode));
}

namespace sandbox_internal {

Status drop_user(std::string* who) {
  if (::geteuid() != 0) {
    *who = "uid " + std::to_string(::geteuid()) + " kept (not root)";
    return Status::ok();
  }
  unsigned uid, gid;
  std::string name;
  if (!sandbox_identity(&uid, &gid, &name))
    return Status::error("Sandbox", "no sandbox user: neither 'dsvmi' nor 'nobody' exists (scripts/install-deps.sh creates dsvmi)");
  gid_t g = gid;
  if (::setgroups(1, &g) != 0 || ::setresgid(g, g, g) != 0 || ::setresuid(uid, uid, uid) != 0)
    return Status::error("Sandbox", "cannot drop to user " + name + ": " + std::strerror(errno));
  if (::setuid(0) == 0) return Status::error("Sandbox", "user drop did not hold: setuid(0) succeeded");
  *who = name + " (" + std::to_string(uid) + ":" + std::to_string(gid) + ")";
  return Status::ok();
}

}  // namespace sandbox_internal
}  // namespace dsvmi

#include "ring_lock.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace dsvmi::ring {

bool TryLockRole(int fd, Role role, std::string* err) {
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(role);
  fl.l_len = 1;
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
  const char* who = role == Role::kConsumer ? "consumer" : "producer";
  if (errno == EAGAIN || errno == EACCES) {
    *err = std::string("ring already has a ") + who + " (lock held)";
  } else {
    *err = std::string("cannot lock ring for the ") + who + ": " + std::strerror(errno);
  }
  return false;
}

}  // namespace dsvmi::ring

#include "ring_lock.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace dsvmi::ring {

namespace {

struct flock ByteLock(short type, int byte) {
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(byte);
  fl.l_len = 1;
  return fl;
}

// 1 if an open file description other than fd's holds a lock on `byte`,
// 0 if none does, -1 on error.
int HeldByOther(int fd, int byte) {
  struct flock fl = ByteLock(F_WRLCK, byte);
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return -1;
  return fl.l_type != F_UNLCK ? 1 : 0;
}

}  // namespace

bool TryLockRole(int fd, Role role, std::string* err) {
  struct flock fl = ByteLock(F_WRLCK, static_cast<int>(role));
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
  const char* who = role == Role::kConsumer ? "consumer" : "producer";
  if (errno == EAGAIN || errno == EACCES) {
    *err = std::string("ring already has a ") + who + " (lock held)";
  } else {
    *err = std::string("cannot lock ring for the ") + who + ": " + std::strerror(errno);
  }
  return false;
}

void AdvertiseIdleWake(int fd) {
  struct flock fl = ByteLock(F_RDLCK, kIdleWakeLockByte);
  (void)fcntl(fd, F_OFD_SETLK, &fl);
}

bool ProducerWakesIdle(int fd) {
  // An error means "don't know": answer false, the consumer then only naps.
  const int idle_wake = HeldByOther(fd, kIdleWakeLockByte);
  if (idle_wake != 0) return idle_wake > 0;
  return HeldByOther(fd, static_cast<int>(Role::kProducer)) == 0;
}

}  // namespace dsvmi::ring

#include "line_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace dsvmi::daemon_internal {

Status connect_unix(const std::string& path, int* fd) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Status::error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Status::error(std::string("socket: ") + std::strerror(errno));
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(s);
    return Status::error("cannot connect to " + path + ": " + std::strerror(e));
  }
  *fd = s;
  return Status::ok();
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p = {fd, POLLOUT, 0};
        if (::poll(&p, 1, 5000) <= 0) return Status::error("peer not reading (write timed out)");
        continue;
      }
      return Status::error(std::string("write: ") + std::strerror(errno));
    }
    data.remove_prefix(size_t(n));
  }
  return Status::ok();
}

Status read_line(int fd, std::string* buffer, std::string* line, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t nl = buffer->find('\n');
    if (nl != std::string::npos) {
      line->assign(*buffer, 0, nl);
      buffer->erase(0, nl + 1);
      return Status::ok();
    }
    if (buffer->size() > kMaxLine) return Status::error("line longer than 4 MiB");
    int wait = -1;
    if (timeout_ms >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Status::error("timed out waiting for a reply");
      wait = int(left.count());
    }
    pollfd p = {fd, POLLIN, 0};
    int r = ::poll(&p, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return Status::error("timed out waiting for a reply");
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return Status::error(std::string("read: ") + std::strerror(errno));
    if (n == 0) return Status::error("connection closed by peer");
    buffer->append(buf, size_t(n));
  }
}

}  // namespace dsvmi::daemon_internal

// GET /metrics over HTTP/1.x from the daemon's own loop: one request per
// connection, bounded in size and time, answered from metrics_text().
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "daemon_impl.h"

namespace dsvmi::daemon_internal {

namespace {
constexpr size_t kMaxHttpConns = 16;
constexpr size_t kMaxHttpRequest = 8192;
constexpr double kHttpTimeout = 5;
}  // namespace

void Daemon::accept_http(int lfd) {
  int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  if (http_.size() >= kMaxHttpConns) {  // a flood gets closed, the loop stays free
    ::close(fd);
    return;
  }
  http_.push_back(HttpConn{fd, {}, {}, 0, false, now_s() + kHttpTimeout});
}

namespace {

std::string http_response(int code, const char* reason, const std::string& type, const std::string& body,
                          bool head, const char* extra = "") {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra + "\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

void Daemon::serve_http(HttpConn& h, short revents) {
  if (!h.responding && (revents & (POLLIN | POLLHUP | POLLERR))) {
    char buf[4096];
    ssize_t n = ::read(h.fd, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) h.deadline = 0;  // closed: drop
      return;
    }
    h.in.append(buf, size_t(n));
    size_t end = h.in.find("\r\n\r\n");
    if (end == std::string::npos) end = h.in.find("\n\n");
    if (end == std::string::npos) {
      if (h.in.size() > kMaxHttpRequest) {
        h.out = http_response(431, "Request Header Fields Too Large", "text/plain", "request too large\n", false);
        h.responding = true;
      }
      return;
    }
    // "METHOD TARGET HTTP/1.x"
    std::string line = h.in.substr(0, h.in.find_first_of("\r\n"));
    std::istringstream ls(line);
    std::string method, target, version;
    ls >> method >> target >> version;
    std::string path = target.substr(0, target.find('?'));
    if (method.empty() || target.empty() || version.rfind("HTTP/1.", 0) != 0) {
      h.out = http_response(400, "Bad Request", "text/plain", "bad request\n", false);
    } else if (path != "/metrics") {
      h.out = http_response(404, "Not Found", "text/plain", "not found (try /metrics)\n", method == "HEAD");
    } else if (method != "GET" && method != "HEAD") {
      h.out = http_response(405, "Method Not Allowed", "text/plain", "method not allowed\n", false, "Allow: GET, HEAD\r\n");
    } else {
      h.out = http_response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", metrics_text(), method == "HEAD");
    }
    h.responding = true;
    h.deadline = now_s() + kHttpTimeout;
  }
  if (h.responding) {
    while (h.sent < h.out.size()) {
      ssize_t n = ::send(h.fd, h.out.data() + h.sent, h.out.size() - h.sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        h.deadline = 0;
        return;
      }
      h.sent += size_t(n);
    }
    ::shutdown(h.fd, SHUT_WR);
    h.deadline = 0;  // done: closed by the loop
  }
}

}  // namespace dsvmi::daemon_internal

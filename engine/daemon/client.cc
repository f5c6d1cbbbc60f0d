// Client connections (non-blocking: a client that does not read must not
// stall the loop) and the small helpers the daemon's files share.
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "daemon_impl.h"

namespace dsvmi::daemon_internal {

namespace {

// What the kernel does not take waits in Client::out, flushed on POLLOUT;
// past this the client is dropped.
constexpr size_t kMaxClientBacklog = 16 << 20;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

void flush_client(Client& c) {
  while (!c.out.empty() && !c.gone) {
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      c.gone = true;
      return;
    }
    c.out.erase(0, size_t(n));
  }
}

void send_to(Client& c, const std::string& msg) {
  if (c.gone) return;
  c.out += msg;
  flush_client(c);
  if (c.out.size() > kMaxClientBacklog) {
    std::fprintf(stderr, "dsvmi daemon: dropping a client that stopped reading (%zu bytes pending)\n", c.out.size());
    c.gone = true;
  }
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

const char* state_name(State s) {
  switch (s) {
    case State::Crawling: return "crawling";
    case State::Starting: return "starting";
    case State::Running: return "running";
    case State::Detaching: return "detaching";
  }
  return "?";
}

Json string_array(const std::vector<std::string>& v) {
  Json::Array a;
  for (const auto& s : v) a.push_back(Json(s));
  return Json(a);
}

std::string last_line(const std::string& text) {
  std::string t = trim(text);
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

std::string last_log_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff from = size > 4096 ? size - 4096 : 0;
  in.seekg(from);
  std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return last_line(tail);
}

}  // namespace dsvmi::daemon_internal

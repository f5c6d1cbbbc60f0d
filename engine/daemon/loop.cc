// The daemon's event loop: one thread, poll() over the listening sockets
// (control, metrics HTTP), the client connections, each engine's stdout and
// each running crawl's records, with one handler per kind of descriptor.
// Nothing long runs inside it: a crawl is a child process whose output the
// loop reads, and attach/detach/policy-set reply when their child processes
// say so (deferred replies), so one disk's attach never stalls another
// disk's events, status or watchers. Short synchronous steps remain: QMP
// commands (bounded by a 10 s timeout) and ring-create/gate-create at
// attach; ring and gate headers are read in process (dsvmi/stat_json.h), so
// status and metrics fork nothing.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "daemon_impl.h"
#include "dsvmi/sandbox.h"
#include "line_socket.h"

namespace dsvmi::daemon_internal {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

int listen_tcp(const std::string& spec, std::string* error) {
  std::string host;
  int port;
  if (Status s = parse_listen_address(spec, &host, &port); !s) {
    *error = s.message();
    return -1;
  }
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 16) != 0) {
    *error = "cannot listen on " + spec + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

// Rings, gates, indexes, policy files and NBD sockets of daemons that died
// (their pid is in the name) are removed at start; engine logs are kept.
void remove_stale_state(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  int removed = 0;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    size_t dash = n.find('-');
    if (dash == std::string::npos || n.rfind("engine-", 0) == 0) continue;
    std::string kind = n.substr(0, dash);
    if (kind != "ring" && kind != "gate" && kind != "index" && kind != "policy" && kind != "nbd") continue;
    long pid = std::strtol(n.c_str() + dash + 1, nullptr, 10);
    if (pid <= 0 || pid == ::getpid() || ::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    if (::unlink((dir + "/" + n).c_str()) == 0) ++removed;
  }
  ::closedir(d);
  if (removed) std::fprintf(stderr, "dsvmi daemon: removed %d stale file(s) of dead daemons from %s\n", removed, dir.c_str());
}

Json to_json(const Reply& r) {
  if (!r.status) return make_error(r.status.error_class().empty() ? "GenericError" : r.status.error_class(), r.status.message());
  return make_return(r.value);
}

}  // namespace

Status Daemon::find(const Json& args, Attachment** out) {
  std::string name = args.get_string("name");
  auto it = atts_.find(name);
  if (it == atts_.end()) {
    std::string known;
    for (auto& [n, a] : atts_) known += (known.empty() ? "" : ", ") + n;
    return Status::error("NotAttached", "no attachment named '" + name + "' (attached: " +
                                            (known.empty() ? "none" : known) + "; see dsvmi status)");
  }
  *out = &it->second;
  return Status::ok();
}

Reply Daemon::dispatch(const std::string& cmd, const Json& args, Client* c) {
  if (cmd == "attach") return attach(args, c);
  if (cmd == "detach") return detach(args, c);
  if (cmd == "policy-set") return policy_set(args, c);
  if (cmd == "watch") return watch(args, c);
  if (cmd == "ping") return Reply::now(Json(Json::Object{}));
  if (cmd == "stream-status") {
    if (!opt_.tap)
      return Reply::fail(Status::error("NotConfigured", "the daemon publishes to no stream (start it with --nats URL)"));
    return Reply::now(opt_.tap->status());
  }
  if (cmd == "status") {
    Attachment* a;
    if (!args.get_string("name").empty())
      if (Status s = find(args, &a); !s) return Reply::fail(s);
    return Reply::now(status(args.get_string("name")));
  }
  return Reply::fail(Status::error("CommandNotFound", "unknown command '" + cmd +
                                                          "' (attach, detach, status, policy-set, watch, stream-status, ping)"));
}

void Daemon::handle_lines(Client& c) {
  size_t nl;
  while (!c.busy && (nl = c.buf.find('\n')) != std::string::npos) {
    std::string line = c.buf.substr(0, nl);
    c.buf.erase(0, nl + 1);
    std::string cmd;
    Json args;
    Reply r;
    if (Status s = parse_request(line, &cmd, &args); !s) r = Reply::fail(Status::error("GenericError", s.message()));
    else r = dispatch(cmd, args, &c);
    if (r.deferred) {  // later requests of this client wait for it
      c.busy = true;
      break;
    }
    send_to(c, to_json(r).dump() + "\n");
    if (c.gone) break;
  }
}

void Daemon::flush_replies() {
  while (!replies_.empty()) {
    auto rs = std::move(replies_);
    replies_.clear();
    for (auto& [id, r] : rs) {
      for (auto it = clients_.begin(); it != clients_.end(); ++it) {
        if (it->id != id || it->gone) continue;
        it->busy = false;
        send_to(*it, r.dump() + "\n");
        handle_lines(*it);  // requests it sent meanwhile
        break;
      }
    }
  }
}

void Daemon::reap() {
  int st;
  pid_t pid;
  while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0) {
    for (auto& [n, a] : atts_) {
      if (a.engine.child.pid() == pid) {
        a.engine.child.reaped(st);
        engine_gone(a);
      } else if (a.crawl.child.pid() == pid) {
        a.crawl.child.reaped(st);  // crawl_finished once its records are read
      }
    }
  }
}

// One attachment's timers and state changes.
void Daemon::tick_attachment(Attachment& a, double t) {
  EngineProcess& e = a.engine;
  if ((a.state == State::Running || a.state == State::Starting) && t - e.rate_t >= 2) {
    e.events_per_s = double(e.events - e.rate_events) / (t - e.rate_t);
    e.rate_t = t;
    e.rate_events = e.events;
  }
  switch (a.state) {
    case State::Crawling:
      if (a.crawl.child.exited() && a.crawl.child.fd() >= 0)
        a.crawl.child.read_lines([&](const std::string& l) { on_crawl_record(a, l); }, kMaxLine);
      if (a.crawl.child.exited() && a.crawl.child.fd() < 0) crawl_finished(a);
      break;
    case State::Starting:
      if (!e.child.running() && e.child.fd() < 0)
        fail_attach(a, Status::error("EngineFailed", "the engine exited at start (" + e.child.exit_text() +
                                                         "): " + last_log_line(a.log) + " (log " + a.log + ")"));
      else if (t - e.started > kEngineReadySeconds)
        fail_attach(a, Status::error("EngineFailed", "the engine did not get ready within " +
                                                         std::to_string(int(kEngineReadySeconds)) + " s (log " + a.log + ")"));
      break;
    case State::Running:
      if (a.policy.client && t > a.policy.deadline)
        policy_failed(a, "EngineFailed", "the engine of '" + a.name + "' did not confirm the policy within " +
                                             std::to_string(int(kPolicyTimeout)) + " s (log " + a.log + ")");
      break;
    case State::Detaching:
      if (e.child.running() && t > a.kill_at) {
        e.child.signal(SIGKILL);
        a.detach_problems.push_back("the engine did not exit within " + std::to_string(int(kEngineStopSeconds)) +
                                    " s of SIGTERM: killed");
        a.kill_at = t + 3600;
      }
      if (!e.child.running() && e.child.fd() < 0) finish_detach(a);
      break;
  }
  if (a.state == State::Running && a.attach_client) {
    Json ret(Json::Object{});
    ret.set("name", a.name);
    ret.set("filter_node", a.filter_node);
    ret.set("device", a.device);
    ret.set("image", a.image);
    ret.set("disk", a.disk);
    ret.set("engine_pid", int64_t(e.child.pid()));
    ret.set("crawl_seconds", a.crawl.seconds);
    ret.set("seconds", t - a.attached_at);
    if (!a.replaced_filter.empty()) ret.set("replaced_stale_filter", a.replaced_filter);
    reply(a.attach_client, make_return(ret));
    a.attach_client = 0;
  }
}

// Timers and state changes, outside any iteration over clients.
void Daemon::tick() {
  reap();
  double t = now_s();
  for (auto& [n, a] : atts_)
    if (!a.erased()) tick_attachment(a, t);
  for (auto it = atts_.begin(); it != atts_.end();) {
    if (it->second.erased()) it = atts_.erase(it);
    else ++it;
  }
}

void Daemon::on_client_ready(Client& c, short revents) {
  if (revents & POLLOUT) flush_client(c);
  if (!(revents & (POLLIN | POLLHUP | POLLERR)) || c.gone) return;
  char buf[65536];
  ssize_t n = ::read(c.fd, buf, sizeof buf);
  if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
    c.gone = true;
    return;
  }
  if (n > 0) c.buf.append(buf, size_t(n));
  handle_lines(c);
  if (c.buf.size() > kMaxLine) ::shutdown(c.fd, SHUT_RDWR);
}

// One poll() round: every ready descriptor to its handler, then the
// closed connections dropped, timers, deferred replies, new connections.
void Daemon::poll_once(int lfd, int hfd) {
  enum Kind { kClient, kHttp, kEngine, kCrawl };
  struct Item {
    Kind kind;
    void* ptr;
    int fd;
  };
  std::vector<pollfd> fds = {{lfd, POLLIN, 0}, {hfd, POLLIN, 0}};  // hfd -1: ignored by poll
  std::vector<Item> items;
  for (auto& c : clients_) {
    if (c.gone) continue;
    short ev = c.busy && c.buf.size() > kMaxLine / 2 ? 0 : POLLIN;
    if (!c.out.empty()) ev |= POLLOUT;
    fds.push_back({c.fd, ev, 0});
    items.push_back({kClient, &c, c.fd});
  }
  for (auto& h : http_) {
    fds.push_back({h.fd, short(h.responding ? POLLOUT : POLLIN), 0});
    items.push_back({kHttp, &h, h.fd});
  }
  for (auto& [n, a] : atts_)
    for (auto [kind, fd] : {std::pair{kEngine, a.engine.child.fd()}, std::pair{kCrawl, a.crawl.child.fd()}})
      if (fd >= 0) {
        fds.push_back({fd, POLLIN, 0});
        items.push_back({kind, &a, fd});
      }
  if (::poll(fds.data(), fds.size(), 200) > 0) {
    for (size_t k = 0; k < items.size(); ++k) {
      short rev = fds[k + 2].revents;
      if (!rev) continue;
      Item& it = items[k];
      // An attachment may have been detached meanwhile: only tick() erases,
      // so the pointer is valid; its descriptor may be closed.
      Attachment* a = static_cast<Attachment*>(it.ptr);
      if (it.kind == kClient) on_client_ready(*static_cast<Client*>(it.ptr), rev);
      else if (it.kind == kHttp) serve_http(*static_cast<HttpConn*>(it.ptr), rev);
      else if (it.kind == kEngine && a->engine.child.fd() == it.fd) read_engine(*a);
      else if (it.kind == kCrawl && a->crawl.child.fd() == it.fd)
        a->crawl.child.read_lines([&](const std::string& l) { on_crawl_record(*a, l); }, kMaxLine);
    }
  }
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (!it->gone) {
      ++it;
      continue;
    }
    ::close(it->fd);
    it = clients_.erase(it);
  }
  double t = now_s();
  for (auto it = http_.begin(); it != http_.end();) {
    if (t <= it->deadline) {
      ++it;
      continue;
    }
    ::close(it->fd);
    it = http_.erase(it);
  }
  tick();
  flush_replies();
  if (fds[0].revents & POLLIN) {
    int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd >= 0) {
      clients_.emplace_back();
      clients_.back().id = ++next_client_;
      clients_.back().fd = cfd;
    }
  }
  if (hfd >= 0 && (fds[1].revents & POLLIN)) accept_http(hfd);
}

// The control socket (after making sure no other daemon serves it) and the
// metrics HTTP socket; stale state of dead daemons removed.
Status Daemon::listen(int* unix_fd, int* http_fd) {
  ::mkdir(opt_.state_dir.c_str(), 0700);
  // Sandboxed engines (group dsvmi) look their policy file up by name here;
  // they cannot list it (docs/security.md).
  share_with_sandbox(opt_.state_dir, 0710);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (opt_.socket_path.size() >= sizeof addr.sun_path) return Status::error("Exit2", "socket path too long");
  std::memcpy(addr.sun_path, opt_.socket_path.data(), opt_.socket_path.size());
  int probe;
  if (connect_unix(opt_.socket_path, &probe)) {
    ::close(probe);
    return Status::error("another daemon already serves " + opt_.socket_path);
  }
  *http_fd = -1;
  if (!opt_.metrics_listen.empty()) {
    std::string err;
    if ((*http_fd = listen_tcp(opt_.metrics_listen, &err)) < 0) return Status::error(err);
  }
  ::unlink(opt_.socket_path.c_str());  // stale socket of a dead daemon
  remove_stale_state(opt_.state_dir);
  *unix_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  mode_t old = ::umask(0077);
  int brc = ::bind(*unix_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (brc != 0 || ::listen(*unix_fd, 16) != 0)
    return Status::error("cannot listen on " + opt_.socket_path + ": " + std::strerror(errno));
  return Status::ok();
}

// Detaches everything (waiting, bounded, for each engine to drain) and
// gives every waiting client its last reply.
void Daemon::shutdown() {
  std::fprintf(stderr, "dsvmi daemon: stopping, detaching %zu disk(s)\n", atts_.size());
  for (auto& [n, a] : atts_) {
    if (a.erased()) continue;
    a.crawl.child.kill();
    std::vector<std::string> problems;
    if (a.state != State::Detaching) unplug_filter(a, &problems);
    stop_engine_blocking(a);
    remove_export(a, &problems);
    remove_files(a);
    if (a.attach_client) reply(a.attach_client, make_error("Detached", "the daemon is stopping"));
    if (a.detach_client) {
      Json ret(Json::Object{});
      ret.set("name", a.name);
      reply(a.detach_client, make_return(ret));
    }
    if (a.policy.client) reply(a.policy.client, make_error("Detached", "the daemon is stopping"));
  }
  flush_replies();
  for (auto& c : clients_) {  // last replies: a moment each, then close
    for (int i = 0; i < 10 && !c.out.empty() && !c.gone; ++i) {
      pollfd p = {c.fd, POLLOUT, 0};
      if (::poll(&p, 1, 50) > 0) flush_client(c);
    }
    ::close(c.fd);
  }
  for (auto& h : http_) ::close(h.fd);
}

int Daemon::run() {
  int lfd = -1, hfd = -1;
  if (Status s = listen(&lfd, &hfd); !s) {
    std::fprintf(stderr, "dsvmi daemon: %s\n", s.message().c_str());
    return s.error_class() == "Exit2" ? 2 : 1;
  }
  struct sigaction sa = {};
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::fprintf(stderr, "dsvmi daemon: listening on %s (state in %s)%s%s\n", opt_.socket_path.c_str(),
               opt_.state_dir.c_str(), hfd >= 0 ? ", metrics on http://" : "",
               hfd >= 0 ? (opt_.metrics_listen + "/metrics").c_str() : "");
  double last_metrics = 0;
  while (!g_stop) {
    poll_once(lfd, hfd);
    if (double t = now_s(); t - last_metrics >= 5) {
      write_metrics();
      last_metrics = t;
    }
  }
  shutdown();
  ::close(lfd);
  if (hfd >= 0) ::close(hfd);
  ::unlink(opt_.socket_path.c_str());
  return 0;
}

}  // namespace dsvmi::daemon_internal

namespace dsvmi {

int run_daemon(const DaemonOptions& options) {
  daemon_internal::Daemon d(options);
  return d.run();
}

}  // namespace dsvmi

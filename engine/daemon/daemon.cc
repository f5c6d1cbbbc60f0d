// The daemon's event loop: one thread, poll() over the listening sockets
// (control, metrics HTTP), the client connections, each engine's stdout and
// each running crawl's output. Nothing long runs inside it: a crawl is a
// child process whose output the loop reads, attach/detach/policy-set reply
// when their child processes say so (deferred replies), so one disk's
// attach never stalls another disk's events, status or watchers.
// Short synchronous steps remain: QMP commands (bounded by a 10 s timeout),
// ring-create/gate-create at attach; ring and gate headers are read in
// process (dsvmi/stat_json.h), so status and metrics fork nothing.
#include "dsvmi/daemon.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "dsvmi/glob.h"
#include "dsvmi/stat_json.h"
#include "line_socket.h"
#include "qmp_client.h"

extern char** environ;

namespace dsvmi {

using daemon_internal::QmpClient;

Status parse_request(std::string_view line, std::string* command, Json* arguments) {
  Json req;
  Status s = Json::parse(line, &req);
  if (!s) return s;
  if (!req.is_object()) return Status::error("request is not a JSON object");
  const Json* ex = req.get("execute");
  if (!ex || !ex->is_string()) return Status::error("request has no string member 'execute'");
  const Json* args = req.get("arguments");
  if (args && !args->is_object()) return Status::error("'arguments' is not an object");
  *command = ex->as_string();
  *arguments = args ? *args : Json(Json::Object{});
  return Status::ok();
}

Json make_error(const std::string& error_class, const std::string& desc) {
  Json e(Json::Object{});
  e.set("class", error_class);
  e.set("desc", desc);
  Json r(Json::Object{});
  r.set("error", e);
  return r;
}

Json make_return(Json value) {
  Json r(Json::Object{});
  r.set("return", std::move(value));
  return r;
}

std::string default_daemon_socket() {
  if (const char* s = std::getenv("DSVMI_SOCKET"); s && *s) return s;
  const char* run = std::getenv("XDG_RUNTIME_DIR");
  return std::string(run && *run ? run : "/tmp") + "/dsvmi.sock";
}

Status daemon_call(const std::string& socket_path, const std::string& command, const Json& arguments,
                   Json* result) {
  int fd;
  Status s = daemon_internal::connect_unix(socket_path, &fd);
  if (!s) return Status::error(s.message() + " (is `dsvmi daemon --socket " + socket_path + "` running?)");
  Json req(Json::Object{});
  req.set("execute", command);
  req.set("arguments", arguments);
  s = daemon_internal::write_all(fd, req.dump() + "\n");
  std::string buf, line;
  if (s) s = daemon_internal::read_line(fd, &buf, &line, -1);
  ::close(fd);
  if (!s) return s;
  Json reply;
  if (!(s = Json::parse(line, &reply))) return s;
  if (const Json* e = reply.get("error")) return Status::error(e->get_string("desc"));
  const Json* r = reply.get("return");
  if (!r) return Status::error("daemon reply has neither 'return' nor 'error'");
  *result = *r;
  return Status::ok();
}

Status parse_listen_address(const std::string& spec, std::string* host, int* port) {
  size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size())
    return Status::error("metrics address must be HOST:PORT, e.g. 127.0.0.1:9717, not '" + spec + "'");
  std::string h = spec.substr(0, colon), p = spec.substr(colon + 1);
  if (h == "localhost") h = "127.0.0.1";
  in_addr a;
  if (::inet_pton(AF_INET, h.c_str(), &a) != 1)
    return Status::error("metrics address: '" + h + "' is not an IPv4 address");
  if ((ntohl(a.s_addr) >> 24) != 127)
    return Status::error("metrics address: " + h + " is not a loopback address (the endpoint has no authentication; "
                                                   "put a reverse proxy in front to expose it)");
  char* end;
  long port_no = std::strtol(p.c_str(), &end, 10);
  if (*end || port_no < 1 || port_no > 65535) return Status::error("metrics address: bad port '" + p + "'");
  *host = h;
  *port = int(port_no);
  return Status::ok();
}

namespace {

// Kills and reaps a child we no longer need (crawl or engine) and closes the
// pipe we read it through; both are reset so the loop stops watching them.
void kill_child(pid_t* pid, int* out_fd) {
  if (*pid > 0) {
    ::kill(*pid, SIGKILL);
    int st;
    ::waitpid(*pid, &st, 0);
    *pid = -1;
  }
  if (*out_fd >= 0) ::close(*out_fd);
  *out_fd = -1;
}

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Thrown inside request handlers only; turned into {"error": ...}.
struct CommandError {
  std::string cls, desc;
};

// Starts argv with stdout (and stderr when both) on a fresh pipe; returns the
// pid and the read end (non-blocking, close-on-exec) or -1.
pid_t spawn_piped(const std::vector<std::string>& argv, bool with_stderr, int stderr_fd, int* out_fd,
                  std::string* error) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    *error = std::strerror(errno);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  if (with_stderr) posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  else if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stderr_fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The daemon ignores SIGPIPE, and an ignored signal stays ignored across
  // exec: give children the default back, so an engine whose daemon died
  // (its stdout pipe gone) ends at its next write instead of running on.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (rc != 0) {
    ::close(p[0]);
    *error = std::string("cannot run ") + argv[0] + ": " + std::strerror(rc);
    return -1;
  }
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  *out_fd = p[0];
  return pid;
}

// Runs argv to completion, stdout+stderr captured together (short tools only).
int run_capture(const std::vector<std::string>& argv, std::string* output) {
  int fd;
  pid_t pid = spawn_piped(argv, true, -1, &fd, output);
  if (pid < 0) return -1;
  ::fcntl(fd, F_SETFL, 0);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (output->size() < (1 << 20)) output->append(buf, size_t(n));
  }
  ::close(fd);
  int st;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string last_line(const std::string& text) {
  std::string t = trim(text);
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// The last line of a (possibly large) log file.
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

Json string_array(const std::vector<std::string>& v) {
  Json::Array a;
  for (const auto& s : v) a.push_back(Json(s));
  return Json(a);
}

// Event latency histogram buckets (seconds), for Prometheus.
constexpr double kLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr size_t kNumBuckets = sizeof kLatencyBuckets / sizeof kLatencyBuckets[0];

enum class State { Crawling, Starting, Running, Detaching };
const char* state_name(State s) {
  switch (s) {
    case State::Crawling: return "crawling";
    case State::Starting: return "starting";
    case State::Running: return "running";
    case State::Detaching: return "detaching";
  }
  return "?";
}

struct Attachment {
  std::string name, qmp, node, filter_node, device, image, mode;
  std::string disk;                    // what the crawl and the engine read: the image file or an nbd+unix:// URL
  std::string export_id, nbd_socket;   // block export through QEMU's NBD server ("" = the file is read)
  std::vector<std::string> globs;
  std::string pending_ttl, pending_max;  // engine options ("" = its defaults)
  Json gate_at_crawl;                    // the crawl's gate record: what the gate passes (null in full mode)
  State state = State::Crawling;
  // Seed §2.6.1: no events until the engine has consumed every frame written
  // up to the end of the crawl (the model is inconsistent before that).
  bool catching_up = false;
  uint64_t suppressed = 0;
  uint64_t disk_size = 0;
  std::string ring, gate, index, log, policy_file;
  // The crawl (state Crawling).
  pid_t crawl = -1;
  int crawl_out = -1;
  bool crawl_eof = false;
  int crawl_status = -1;  // exit status once reaped
  std::string crawl_buf;
  Json crawl_summary;       // the crawl's summary record (null until it comes)
  std::string crawl_error;  // its error record's message ("" = none)
  double crawl_started = 0, crawl_seconds = 0, crawl_fraction = 0;
  unsigned crawl_fs = 0;
  // The engine.
  pid_t engine = -1;
  int engine_out = -1;
  std::string out_buf;
  std::string engine_exit;  // "" while running
  double engine_started = 0;
  uint64_t events = 0, restarts = 0, bad_lines = 0;
  double attached_at = 0, rate_t = 0;
  uint64_t rate_events = 0;
  double events_per_s = 0;
  // Deferred replies: the client ids waiting (0 = none).
  uint64_t attach_client = 0, policy_client = 0, detach_client = 0;
  double policy_deadline = 0, detach_started = 0, kill_at = 0;
  std::string replaced_filter;              // a dead daemon's filter removed at attach ("" = none)
  std::string replay_until;                 // ring producer index when the crawl ended ("" = unknown)
  std::string policy_backup;                // the policy file's previous text, restored if the engine refuses
  std::string policy_pending_ttl, policy_pending_max;  // asked for, in force once the engine confirms
  std::vector<std::string> detach_problems;
  // The engine's status records.
  Json last_stats, last_policy;
  int64_t policy_generation = 0;
  uint64_t policy_changes = 0;
  // Latency of the events the daemon received ("latency_us" of each event).
  uint64_t lat_buckets[kNumBuckets] = {};
  uint64_t lat_count = 0;
  double lat_sum = 0;
};

struct Client {
  uint64_t id = 0;
  int fd = -1;
  std::string buf;
  bool busy = false;  // a deferred reply is owed: later requests wait (replies stay in order)
  bool gone = false;  // peer closed: erased by the loop (a deferred reply to it is dropped)
  std::string out;    // replies/events not yet taken by the socket (non-blocking; bounded)
  bool watching = false;
  std::string watch_host_vm;
  Glob watch_path;
};

// A client that does not read (a stalled `dsvmi watch`) must not stall the
// loop: sockets are non-blocking, what the kernel does not take waits in
// `out`, flushed on POLLOUT; past kMaxClientBacklog the client is dropped.
constexpr size_t kMaxClientBacklog = 16 << 20;

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

// One HTTP/1.x request per connection, bounded in size and time.
struct HttpConn {
  int fd;
  std::string in, out;
  size_t sent = 0;
  bool responding = false;
  double deadline;
};

constexpr size_t kMaxHttpConns = 16;
constexpr size_t kMaxHttpRequest = 8192;
constexpr double kHttpTimeout = 5;
constexpr double kEngineStopSeconds = 10;
constexpr double kPolicyTimeout = 15;
constexpr double kEngineReadySeconds = 30;

struct NbdServer {
  std::string socket;
  bool ours = false;
  int exports = 0;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions o) : opt_(std::move(o)) {}
  int run();

 private:
  void handle_lines(Client& c);
  Json dispatch(const std::string& cmd, const Json& args, Client* c);
  Json attach(const Json& args, Client* c);
  std::string remove_stale_filter(QmpClient& q, const std::string& qmp, const Json& blocks, const std::string& node,
                                  std::string* device);
  Json detach(const Json& args, Client* c);
  Json status(const Json& args);
  Json status_of(Attachment& a);
  Json policy_set(const Json& args, Client* c);
  Json watch(const Json& args, Client* c);
  void start_crawl(Attachment& a);
  void pump_crawl(Attachment& a);
  void crawl_finished(Attachment& a);
  void on_crawl_record(Attachment& a, const std::string& line);
  void start_engine(Attachment& a);
  void stop_engine_blocking(Attachment& a);
  void fail_attach(Attachment& a, const std::string& cls, const std::string& desc);
  // q: an open QMP connection to reuse (QEMU serves one client per QMP socket).
  void unplug_filter(Attachment& a, std::vector<std::string>* problems, QmpClient* q = nullptr);
  void remove_export(Attachment& a, std::vector<std::string>* problems, QmpClient* q = nullptr);
  void remove_files(Attachment& a);
  void finish_detach(Attachment& a);
  void pump_engine(Attachment& a);
  std::string ring_producer_index(const Attachment& a);
  void on_engine_line(Attachment& a, const std::string& line);
  void on_engine_record(Attachment& a, const Json& rec);
  void engine_gone(Attachment& a);
  void reap();
  void tick();
  void publish(const Attachment& a, Json ev);
  std::string metrics_text();
  void write_metrics();
  void accept_http(int lfd);
  void serve_http(HttpConn& h, short revents);
  void reply(uint64_t client, Json r) { replies_.push_back({client, std::move(r)}); }
  void flush_replies();
  std::string tool(std::vector<std::string> args, int* rc);
  Attachment& find(const Json& args);
  void write_policy_file(const std::string& path, const std::string& mode, const std::vector<std::string>& globs,
                         const std::string& pending_ttl, const std::string& pending_max);

  DaemonOptions opt_;
  std::map<std::string, Attachment> atts_;
  std::list<Client> clients_;
  std::list<HttpConn> http_;
  std::vector<std::pair<uint64_t, Json>> replies_;
  std::map<std::string, NbdServer> nbd_;  // by QMP socket path
  uint64_t next_id_ = 0, next_client_ = 0;
};

std::string Daemon::tool(std::vector<std::string> args, int* rc) {
  args.insert(args.begin(), opt_.self_exe);
  std::string out;
  *rc = run_capture(args, &out);
  return trim(out);
}

Attachment& Daemon::find(const Json& args) {
  std::string name = args.get_string("name");
  auto it = atts_.find(name);
  if (it == atts_.end()) {
    std::string known;
    for (auto& [n, a] : atts_) known += (known.empty() ? "" : ", ") + n;
    throw CommandError{"NotAttached", "no attachment named '" + name + "' (attached: " +
                                          (known.empty() ? "none" : known) + "; see dsvmi status)"};
  }
  return it->second;
}

std::vector<std::string> string_list(const Json* j) {
  std::vector<std::string> out;
  if (!j) return out;
  if (!j->is_array()) throw CommandError{"InvalidArgument", "globs must be an array of strings"};
  if (j->as_array().size() > 4096) throw CommandError{"InvalidArgument", "more than 4096 globs"};
  for (const auto& g : j->as_array()) {
    if (!g.is_string()) throw CommandError{"InvalidArgument", "globs must be an array of strings"};
    Glob tmp;
    if (Status s = Glob::compile(g.as_string(), &tmp); !s)
      throw CommandError{"InvalidArgument", "glob '" + g.as_string() + "': " + s.message()};
    out.push_back(g.as_string());
  }
  return out;
}

// Policy values arrive as strings (key = value files) or numbers (JSON).
std::string scalar(const Json& args, const char* key, std::string def) {
  const Json* v = args.get(key);
  if (!v) return def;
  std::string t;
  if (v->is_string()) t = v->as_string();
  else if (v->is_number()) t = v->dump();
  else throw CommandError{"InvalidArgument", std::string(key) + " must be a string or a number"};
  // Digits, optionally one K/M/G: they end up on a command line.
  size_t d = t.find_first_not_of("0123456789");
  if (t.empty() || d == 0 || (d != std::string::npos && (d + 1 != t.size() || std::string("KMG").find(t[d]) == std::string::npos)))
    throw CommandError{"InvalidArgument", std::string(key) + ": '" + t + "' is not a number (K/M/G suffix allowed)"};
  return t;
}

void Daemon::write_policy_file(const std::string& path, const std::string& mode, const std::vector<std::string>& globs,
                               const std::string& pending_ttl, const std::string& pending_max) {
  Json p(Json::Object{});
  p.set("mode", mode);
  p.set("globs", string_array(globs));
  if (!pending_ttl.empty()) p.set("pending_ttl", pending_ttl);
  if (!pending_max.empty()) p.set("pending_max", pending_max);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << p.dump() << "\n";
    if (!out) throw CommandError{"InvalidArgument", "cannot write the policy file " + tmp};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw CommandError{"InvalidArgument", "cannot write the policy file " + path + ": " + std::strerror(errno)};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json Daemon::attach(const Json& args, Client* c) {
  Attachment a;
  a.pending_ttl = scalar(args, "pending_ttl", "");
  a.pending_max = scalar(args, "pending_max", "");
  std::string ring_size = scalar(args, "ring_size", "64M");
  a.qmp = args.get_string("qmp");
  a.node = args.get_string("node");
  a.mode = args.get_string("mode", "low-overhead");
  a.globs = string_list(args.get("globs"));
  if (a.qmp.empty() || a.node.empty()) throw CommandError{"InvalidArgument", "attach needs 'qmp' and 'node'"};
  if (a.mode != "low-overhead" && a.mode != "full")
    throw CommandError{"InvalidArgument", "mode must be low-overhead or full, not '" + a.mode + "'"};
  std::string read_via = args.get_string("read", "auto");
  if (read_via != "auto" && read_via != "file" && read_via != "nbd")
    throw CommandError{"InvalidArgument", "read must be auto, file or nbd, not '" + read_via + "'"};
  a.name = args.get_string("name", "localhost:" + a.node + ":" + a.node);
  if (a.name.size() > 256 || a.name.find_first_of("\n\"\\") != std::string::npos)
    throw CommandError{"InvalidArgument", "name must be at most 256 characters without quotes, backslashes or newlines"};
  if (auto it = atts_.find(a.name); it != atts_.end())
    throw CommandError{"AlreadyAttached", "'" + a.name + "' is already attached" +
                                              (it->second.state == State::Crawling ? " (its crawl is running)" : "") +
                                              " (dsvmi detach it first)"};
  for (auto& [n, o] : atts_)
    if (o.qmp == a.qmp && o.node == a.node)
      throw CommandError{"AlreadyAttached", "node '" + a.node + "' of " + a.qmp + " is already attached as '" + n + "'"};

  QmpClient q;
  if (Status s = q.connect(a.qmp); !s)
    throw CommandError{"QmpUnreachable", "QMP socket " + a.qmp + ": " + s.message() +
                                             " (start QEMU with -qmp unix:PATH,server=on,wait=off and pass that PATH)"};
  Json nodes, blocks, r;
  if (Status s = q.execute("query-named-block-nodes", Json(Json::Object{}), &nodes); !s)
    throw CommandError{"QmpError", "query-named-block-nodes: " + s.message()};
  if (!nodes.is_array()) throw CommandError{"QmpError", "query-named-block-nodes returned no list"};
  const Json* node = nullptr;
  std::string names;
  for (const auto& n : nodes.as_array()) {
    names += (names.empty() ? "" : ", ") + n.get_string("node-name");
    if (n.get_string("node-name") == a.node) node = &n;
  }
  if (!node) throw CommandError{"NodeNotFound", "node '" + a.node + "' not found in this VM (its nodes: " + names + ")"};
  std::string drv = node->get_string("drv");
  if (drv == "dsvmi") throw CommandError{"AlreadyAttached", "node '" + a.node + "' is a dsvmi filter itself"};
  a.image = node->get_string("file");
  if (const Json* img = node->get("image")) a.disk_size = uint64_t(img->get_number("virtual-size"));
  if (a.disk_size == 0) throw CommandError{"QmpError", "node '" + a.node + "' reports no virtual size"};
  // A raw image (or a plain file node) is crawled from its file; anything
  // else (qcow2, backing chains, a json: file name) through QEMU's NBD server.
  struct stat st;
  bool plain = (drv == "raw" || drv == "file") && !a.image.empty() && a.image.rfind("json:", 0) != 0 &&
               ::stat(a.image.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
  if (read_via == "file" && !plain)
    throw CommandError{"Unsupported", "node '" + a.node + "' is a " + drv + " node on '" + a.image +
                                          "'; it cannot be read as a raw file (attach with read auto or nbd)"};
  bool via_nbd = read_via == "nbd" || !plain;

  if (Status s = q.execute("query-block", Json(Json::Object{}), &blocks); !s)
    throw CommandError{"QmpError", "query-block: " + s.message()};
  if (blocks.is_array())
    for (const auto& b : blocks.as_array()) {
      const Json* ins = b.get("inserted");
      if (ins && ins->get_string("node-name") == a.node) a.device = b.get_string("qdev");
    }
  std::string replaced;
  if (a.device.empty()) replaced = remove_stale_filter(q, a.qmp, blocks, a.node, &a.device);
  if (a.device.empty())
    throw CommandError{"NodeNotFound", "no device's drive is node '" + a.node +
                                           "' (attach to the top node of a device: query-block's inserted.node-name)"};

  std::string id = std::to_string(::getpid()) + "-" + std::to_string(++next_id_);
  // The daemon's pid in the name: after a crash of this daemon, the next one
  // knows the filter is stale (remove_stale_filter).
  a.filter_node = "dsvmi-" + id;
  a.replaced_filter = replaced;
  a.ring = opt_.state_dir + "/ring-" + id;
  a.gate = opt_.state_dir + "/gate-" + id;
  a.index = opt_.state_dir + "/index-" + id;
  a.log = opt_.state_dir + "/engine-" + id + ".log";
  a.policy_file = opt_.state_dir + "/policy-" + id + ".json";
  a.disk = a.image;
  std::vector<std::string> problems;
  // Rolls back what is done so far (in reverse) and throws.
  auto fail = [&](const std::string& cls, const std::string& desc) {
    std::vector<std::string> ignored;
    remove_export(a, &ignored, &q);
    remove_files(a);
    throw CommandError{cls, desc};
  };

  if (via_nbd) {
    NbdServer& srv = nbd_[a.qmp];
    if (srv.socket.empty()) {
      srv.socket = opt_.state_dir + "/nbd-" + std::to_string(::getpid()) + "-" + std::to_string(next_id_) + ".sock";
      Json addr(Json::Object{}), data(Json::Object{}), start(Json::Object{});
      data.set("path", srv.socket);
      addr.set("type", "unix");
      addr.set("data", data);
      start.set("addr", addr);
      if (Status s = q.execute("nbd-server-start", start, &r); !s) {
        nbd_.erase(a.qmp);
        if (s.message().find("already running") != std::string::npos)
          throw CommandError{"Unsupported", "node '" + a.node + "' (" + drv +
                                                ") must be read through QEMU's NBD server, but this QEMU already runs one "
                                                "that dsvmi did not start (nbd-server-stop it, or attach a raw image)"};
        throw CommandError{"QmpError", "nbd-server-start: " + s.message()};
      }
      srv.ours = true;
    }
    a.nbd_socket = srv.socket;
    a.export_id = a.filter_node + "-export";
    Json exp(Json::Object{});
    exp.set("type", "nbd");
    exp.set("id", a.export_id);
    exp.set("node-name", a.node);
    exp.set("name", a.export_id);
    exp.set("writable", false);
    if (Status s = q.execute("block-export-add", exp, &r); !s) {
      a.export_id.clear();
      if (srv.ours && srv.exports == 0) {  // started for this attach only
        Json ignored;
        q.execute("nbd-server-stop", Json(Json::Object{}), &ignored);
        ::unlink(srv.socket.c_str());
        nbd_.erase(a.qmp);
      }
      fail("QmpError", "block-export-add of node '" + a.node + "' (to read the " + drv + " disk over NBD): " + s.message());
    }
    ++srv.exports;
    a.disk = "nbd+unix:///" + a.export_id + "?socket=" + srv.socket;
  }

  int rc;
  std::string out = tool({"ring-create", a.ring, "--size", ring_size}, &rc);
  if (rc != 0) fail("RingFailed", last_line(out));
  // Pass-all while the crawl runs: nothing the guest writes meanwhile is missed.
  out = tool({"gate-create", a.gate, "--disk-size", std::to_string(a.disk_size), "--mode", "pass-all"}, &rc);
  if (rc != 0) fail("GateFailed", last_line(out));
  try {
    write_policy_file(a.policy_file, a.mode, a.globs, a.pending_ttl, a.pending_max);
  } catch (const CommandError& e) {
    fail(e.cls, e.desc);
  }
  Json add(Json::Object{});
  add.set("driver", "dsvmi");
  add.set("node-name", a.filter_node);
  add.set("file", a.node);
  add.set("ring", a.ring);
  add.set("gate", a.gate);
  add.set("discard", "unmap");
  if (Status s = q.execute("blockdev-add", add, &r); !s) {
    if (s.message().find("'dsvmi'") != std::string::npos)
      fail("UnpatchedQemu", "this QEMU has no dsvmi filter driver (" + s.message() +
                                "): run the patched QEMU built by qemu-patches/build.sh");
    fail("QmpError", "blockdev-add of the filter: " + s.message());
  }
  Json set(Json::Object{});
  set.set("path", a.device);
  set.set("property", "drive");
  set.set("value", a.filter_node);
  if (Status s = q.execute("qom-set", set, &r); !s) {
    Json del(Json::Object{});
    del.set("node-name", a.filter_node);
    q.execute("blockdev-del", del, &r);
    fail("QmpError", "qom-set " + a.device + " drive: " + s.message());
  }
  // From here every guest write is in the ring. The crawl runs as a child
  // process the loop reads; the client gets its reply when the engine runs.
  a.attached_at = now_s();
  a.state = State::Crawling;
  a.attach_client = c ? c->id : 0;
  try {
    start_crawl(a);
  } catch (const CommandError& e) {
    std::vector<std::string> ignored;
    unplug_filter(a, &ignored, &q);
    fail(e.cls, e.desc);
  }
  std::string name = a.name;
  atts_.emplace(name, std::move(a));
  return Json();  // deferred
}

// The device's drive is not `node` but a dsvmi filter above it: left by a
// daemon that died (its pid, in the filter's name "dsvmi-PID-N", is gone), it
// is taken out (device back on the node, filter and its NBD export deleted)
// and its name returned; one of a live daemon (another, or this one) is
// refused. The parent/child edge comes from x-debug-query-block-graph.
std::string Daemon::remove_stale_filter(QmpClient& q, const std::string& qmp, const Json& blocks,
                                        const std::string& node, std::string* device) {
  std::map<std::string, std::string> filters;  // filter node -> device
  if (blocks.is_array())
    for (const auto& b : blocks.as_array())
      if (const Json* ins = b.get("inserted"); ins && ins->get_string("drv") == "dsvmi")
        filters[ins->get_string("node-name")] = b.get_string("qdev");
  if (filters.empty()) return "";
  Json graph;
  if (!q.execute("x-debug-query-block-graph", Json(Json::Object{}), &graph) || !graph.is_object()) return "";
  std::map<uint64_t, std::string> names;
  if (const Json* ns = graph.get("nodes"); ns && ns->is_array())
    for (const auto& n : ns->as_array()) names[uint64_t(n.get_number("id"))] = n.get_string("name");
  const Json* edges = graph.get("edges");
  if (!edges || !edges->is_array()) return "";
  for (const auto& e : edges->as_array()) {
    std::string parent = names[uint64_t(e.get_number("parent"))], child = names[uint64_t(e.get_number("child"))];
    auto f = filters.find(parent);
    if (f == filters.end() || child != node) continue;
    for (auto& [n, a] : atts_)
      if (a.filter_node == parent) throw CommandError{"AlreadyAttached", "node '" + node + "' is already attached as '" + n + "'"};
    long pid = 0;
    if (std::sscanf(parent.c_str(), "dsvmi-%ld-", &pid) != 1 || pid <= 0)
      throw CommandError{"AlreadyAttached", "node '" + node + "' is behind a dsvmi filter '" + parent +
                                                "' of another dsvmi daemon (detach it there)"};
    if (pid == ::getpid() || ::kill(pid_t(pid), 0) == 0 || errno != ESRCH)
      throw CommandError{"AlreadyAttached", "node '" + node + "' is attached by the dsvmi daemon with pid " +
                                                std::to_string(pid) + " (filter '" + parent + "'; detach it there)"};
    Json r, set(Json::Object{}), del(Json::Object{}), exp(Json::Object{});
    set.set("path", f->second);
    set.set("property", "drive");
    set.set("value", node);
    if (Status s = q.execute("qom-set", set, &r); !s)
      throw CommandError{"QmpError", "removing the stale filter '" + parent + "' of a dead daemon: qom-set: " + s.message()};
    del.set("node-name", parent);
    if (Status s = q.execute("blockdev-del", del, &r); !s)
      throw CommandError{"QmpError", "removing the stale filter '" + parent + "' of a dead daemon: blockdev-del: " + s.message()};
    exp.set("id", parent + "-export");
    exp.set("mode", "hard");
    if (q.execute("block-export-del", exp, &r)) {
      // It had one: the NBD server was the dead daemon's; stop it if it now
      // serves nothing (its socket path died with that daemon).
      Json exports;
      if (q.execute("query-block-exports", Json(Json::Object{}), &exports) && exports.is_array() &&
          exports.as_array().empty() && !nbd_.count(qmp))
        q.execute("nbd-server-stop", Json(Json::Object{}), &r);
    }
    std::fprintf(stderr, "dsvmi daemon: removed the stale filter %s of dead daemon %ld from %s\n", parent.c_str(), pid,
                 f->second.c_str());
    *device = f->second;
    return parent;
  }
  return "";
}

void Daemon::start_crawl(Attachment& a) {
  // The crawl reads the disk while the guest writes it; every write since
  // the filter went in is in the ring (gate pass-all) and the engine replays
  // them after the crawl before emitting events for them.
  std::vector<std::string> crawl = {opt_.self_exe, "crawl", a.disk, "--index", a.index, "--json"};
  if (a.mode == "low-overhead") {
    // Publishes the policy's grains (metadata + watched files' data) into the
    // gate, replacing pass-all; the engine keeps it in step from then on.
    crawl.insert(crawl.end(), {"--gate", a.gate, "--policy", a.globs.empty() ? "metadata" : "glob"});
    for (const auto& g : a.globs) crawl.insert(crawl.end(), {"--glob", g});
  }
  // Its records (docs/cli-json.md) on the pipe; anything on stderr goes to
  // the attachment's log.
  std::string err;
  int log = ::open(a.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  a.crawl = spawn_piped(crawl, false, log, &a.crawl_out, &err);
  if (log >= 0) ::close(log);
  if (a.crawl < 0) throw CommandError{"CrawlFailed", "cannot start the crawl: " + err};
  a.crawl_started = now_s();
  a.crawl_eof = false;
  a.crawl_status = -1;
}

void Daemon::pump_crawl(Attachment& a) {
  char buf[16384];
  while (a.crawl_out >= 0) {
    ssize_t n = ::read(a.crawl_out, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (n == 0) {
      ::close(a.crawl_out);
      a.crawl_out = -1;
      a.crawl_eof = true;
      break;
    }
    a.crawl_buf.append(buf, size_t(n));
    size_t nl;
    while ((nl = a.crawl_buf.find('\n')) != std::string::npos) {
      on_crawl_record(a, a.crawl_buf.substr(0, nl));
      a.crawl_buf.erase(0, nl + 1);
    }
    if (a.crawl_buf.size() > 65536) a.crawl_buf.clear();  // no newline in 64 KiB: not the crawl's output
  }
}

// One line of `dsvmi crawl --json` (docs/cli-json.md); anything else is
// ignored (the crawl's own messages go to the log, not to this pipe).
void Daemon::on_crawl_record(Attachment& a, const std::string& line) {
  Json rec;
  if (!Json::parse(line, &rec) || !rec.is_object()) return;
  std::string kind = rec.get_string("crawl");
  if (kind == "progress") {
    a.crawl_fs = unsigned(std::min<uint64_t>(rec.get_uint64("file_system"), 1u << 20));
    a.crawl_fraction = std::clamp(rec.get_number("fraction"), 0.0, 1.0);
  } else if (kind == "summary") {
    a.crawl_summary = rec;
  } else if (kind == "gate") {
    a.gate_at_crawl = rec;
  } else if (kind == "error") {
    a.crawl_error = rec.get_string("error", "no reason given");
  }
}

void Daemon::crawl_finished(Attachment& a) {
  a.crawl = -1;
  a.crawl_seconds = now_s() - a.crawl_started;
  if (a.crawl_status != 0 || !a.crawl_summary.is_object()) {
    std::string why = !a.crawl_error.empty() ? a.crawl_error
                      : a.crawl_status != 0  ? "exited with status " + std::to_string(a.crawl_status) + ": " + last_log_line(a.log)
                                             : "no summary record";
    return fail_attach(a, "CrawlFailed", "crawl of " + a.disk + " failed: " + why +
                                             " (only ext2/3/4 on MBR/GPT or bare is supported)");
  }
  const Json* fss = a.crawl_summary.get("file_systems");
  if (!fss || !fss->is_array() || fss->as_array().empty()) {
    std::string skipped;
    if (const Json* sk = a.crawl_summary.get("skipped"); sk && sk->is_array())
      for (const auto& x : sk->as_array())
        if (x.is_string()) skipped += ", skipped " + x.as_string();
    return fail_attach(a, "UnsupportedFileSystem",
                       "no supported file system on " + a.image + " (" +
                           (skipped.empty() ? "nothing recognised" : skipped.substr(2)) + "); dsvmi watches ext2/3/4");
  }
  // Seed §2.6.1: the frames written up to the end of the crawl are replayed
  // against a model they may predate; the engine replays until the producer
  // index read now (--replay-until) and brackets that replay with its ready
  // records (phase replaying -> live), in stream order; events between them
  // are withheld.
  a.catching_up = false;
  a.replay_until = ring_producer_index(a);
  try {
    start_engine(a);
  } catch (const CommandError& e) {
    return fail_attach(a, e.cls, e.desc);
  }
  a.state = State::Starting;
}

// An attach that failed after the filter went in: undo all of it, tell the
// client, forget the attachment (at the next safe point).
void Daemon::fail_attach(Attachment& a, const std::string& cls, const std::string& desc) {
  kill_child(&a.crawl, &a.crawl_out);
  std::vector<std::string> problems;
  unplug_filter(a, &problems);
  kill_child(&a.engine, &a.engine_out);  // a failed attach has no events to drain: no wait
  remove_export(a, &problems);
  remove_files(a);
  std::fprintf(stderr, "dsvmi daemon: attach of %s failed: %s\n", a.name.c_str(), desc.c_str());
  std::string d = desc;
  if (!problems.empty()) {
    d += " (rollback:";
    for (auto& p : problems) d += " " + p + ";";
    d.back() = ')';
  }
  if (a.attach_client) reply(a.attach_client, make_error(cls, d));
  a.attach_client = 0;
  a.state = State::Detaching;
  a.detach_client = 0;
  a.kill_at = -1;  // marks "erase me"
}

void Daemon::start_engine(Attachment& a) {
  // `dsvmi run` flushes its events after every burst it reads from a live
  // ring, so watchers see them as they happen through this pipe. It always
  // owns the gate (a live policy change may switch modes); in full mode the
  // policy file makes it pass-all.
  std::vector<std::string> argv = {opt_.self_exe, "run", "--ring", a.ring, "--index", a.index, "--disk", a.disk,
                                   "--gate", a.gate, "--policy-file", a.policy_file, "--stats-interval", "2"};
  if (!a.replay_until.empty()) argv.insert(argv.end(), {"--replay-until", a.replay_until});
  // pending_ttl/pending_max come from the policy file only (the command
  // line would win over it and make them fixed).
  int log = ::open(a.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  std::string err;
  pid_t pid = spawn_piped(argv, false, log, &a.engine_out, &err);
  if (log >= 0) ::close(log);
  if (pid < 0) throw CommandError{"EngineFailed", "cannot start the engine: " + err};
  a.engine = pid;
  a.engine_exit.clear();
  a.engine_started = a.rate_t = now_s();
  a.rate_events = a.events;
}

// Only for the daemon's own shutdown: waits (bounded)
// for the engine to drain, reading its output meanwhile.
void Daemon::stop_engine_blocking(Attachment& a) {
  if (a.engine > 0) {
    ::kill(a.engine, SIGTERM);
    int st;
    bool gone = false;
    for (int i = 0; i < int(kEngineStopSeconds * 20) && !gone; ++i) {
      pid_t r = ::waitpid(a.engine, &st, WNOHANG);
      if (r == a.engine || (r < 0 && errno == ECHILD)) {
        gone = true;
      } else {
        pollfd p = {a.engine_out, POLLIN, 0};
        if (a.engine_out >= 0 && ::poll(&p, 1, 50) > 0) pump_engine(a);
        else if (a.engine_out < 0) ::usleep(50 * 1000);
      }
    }
    if (!gone) {
      ::kill(a.engine, SIGKILL);
      ::waitpid(a.engine, &st, 0);
    }
    a.engine = -1;
  }
  if (a.engine_out >= 0) {
    ::fcntl(a.engine_out, F_SETFL, 0);  // engine is gone: read to EOF
    pump_engine(a);
    if (a.engine_out >= 0) ::close(a.engine_out);
    a.engine_out = -1;
  }
}

// Filter out of the guest's path (seed §2.6.2): the device back on the node,
// the filter node deleted. Works with QEMU gone (a problem is noted).
void Daemon::unplug_filter(Attachment& a, std::vector<std::string>* problems, QmpClient* open) {
  QmpClient own;
  QmpClient& q = open ? *open : own;
  if (Status s = open ? Status::ok() : own.connect(a.qmp); !s) {
    problems->push_back("QMP " + a.qmp + ": " + s.message() + " (VM gone? filter removal skipped)");
    return;
  }
  Json r, set(Json::Object{});
  set.set("path", a.device);
  set.set("property", "drive");
  set.set("value", a.node);
  if (Status s2 = q.execute("qom-set", set, &r); !s2) problems->push_back("qom-set back: " + s2.message());
  Json del(Json::Object{});
  del.set("node-name", a.filter_node);
  if (Status s2 = q.execute("blockdev-del", del, &r); !s2) problems->push_back("blockdev-del: " + s2.message());
}

// The NBD export (after the engine is gone: it reads blocks back through it),
// and our NBD server once it serves nothing of ours.
void Daemon::remove_export(Attachment& a, std::vector<std::string>* problems, QmpClient* open) {
  if (a.export_id.empty()) return;
  QmpClient own;
  QmpClient& q = open ? *open : own;
  auto srv = nbd_.find(a.qmp);
  bool last = srv != nbd_.end() && --srv->second.exports <= 0 && srv->second.ours;
  if (Status s = open ? Status::ok() : own.connect(a.qmp); !s) {
    problems->push_back("QMP " + a.qmp + ": " + s.message() + " (VM gone? NBD export removal skipped)");
    if (srv != nbd_.end() && srv->second.exports <= 0) nbd_.erase(srv);
    a.export_id.clear();
    return;
  }
  Json r, del(Json::Object{});
  del.set("id", a.export_id);
  del.set("mode", "hard");
  if (Status s2 = q.execute("block-export-del", del, &r); !s2) problems->push_back("block-export-del: " + s2.message());
  if (last) {
    if (Status s2 = q.execute("nbd-server-stop", Json(Json::Object{}), &r); !s2)
      problems->push_back("nbd-server-stop: " + s2.message());
    ::unlink(srv->second.socket.c_str());
  }
  if (srv != nbd_.end() && srv->second.exports <= 0) nbd_.erase(srv);
  a.export_id.clear();
}

void Daemon::remove_files(Attachment& a) {
  for (const std::string* f : {&a.ring, &a.gate, &a.index, &a.policy_file}) ::unlink(f->c_str());
  ::unlink((a.policy_file + ".tmp").c_str());
}

Json Daemon::detach(const Json& args, Client* c) {
  Attachment& a = find(args);
  if (a.state == State::Detaching) throw CommandError{"NotAttached", "'" + a.name + "' is being detached already"};
  a.detach_started = now_s();
  a.detach_problems.clear();
  a.detach_client = c ? c->id : 0;
  if (a.attach_client) {
    reply(a.attach_client, make_error("Detached", "'" + a.name + "' was detached before its attach completed"));
    a.attach_client = 0;
  }
  if (a.policy_client) {
    reply(a.policy_client, make_error("Detached", "'" + a.name + "' was detached during the policy change"));
    a.policy_client = 0;
  }
  kill_child(&a.crawl, &a.crawl_out);  // attach still crawling: stop it
  // 1. the guest's path first: from here on the VM no longer depends on us.
  unplug_filter(a, &a.detach_problems);
  // 2. the engine drains every frame already in the ring, then exits; the
  // loop keeps publishing its events and finishes the detach when it is gone.
  a.state = State::Detaching;
  a.kill_at = now_s() + kEngineStopSeconds;
  if (a.engine > 0) ::kill(a.engine, SIGTERM);
  return Json();  // deferred: finish_detach replies
}

void Daemon::finish_detach(Attachment& a) {
  remove_export(a, &a.detach_problems);
  remove_files(a);
  if (a.detach_client) {
    Json ret(Json::Object{});
    ret.set("name", a.name);
    ret.set("events", a.events);
    ret.set("seconds", now_s() - a.detach_started);
    ret.set("problems", string_array(a.detach_problems));
    if (!a.engine_exit.empty()) ret.set("engine_exit", a.engine_exit);
    reply(a.detach_client, make_return(ret));
  }
  a.detach_client = 0;
  a.kill_at = -1;  // erase at the next safe point
}

Json Daemon::policy_set(const Json& args, Client* c) {
  Attachment& a = find(args);
  if (a.state != State::Running)
    throw CommandError{"Busy", "'" + a.name + "' is " + state_name(a.state) + "; policy set needs a running engine"};
  if (a.policy_client) throw CommandError{"Busy", "a policy change of '" + a.name + "' is in progress"};
  if (a.engine <= 0)
    throw CommandError{"EngineFailed", "the engine of '" + a.name + "' is not running (exited: " + a.engine_exit +
                                           "; log " + a.log + "); detach and attach again"};
  std::string mode = args.get_string("mode", a.mode);
  if (mode != "low-overhead" && mode != "full")
    throw CommandError{"InvalidArgument", "mode must be low-overhead or full, not '" + mode + "'"};
  std::vector<std::string> globs = args.get("globs") ? string_list(args.get("globs")) : a.globs;
  std::string ttl = scalar(args, "pending_ttl", a.pending_ttl), max = scalar(args, "pending_max", a.pending_max);
  // The engine re-reads the file on SIGHUP and answers with one
  // {"engine":"policy"} record; no restart, the ring keeps flowing.
  a.policy_backup = read_file(a.policy_file);
  write_policy_file(a.policy_file, mode, globs, ttl, max);
  a.policy_pending_ttl = ttl;
  a.policy_pending_max = max;
  if (::kill(a.engine, SIGHUP) != 0) {
    std::ofstream(a.policy_file, std::ios::trunc) << a.policy_backup;
    throw CommandError{"EngineFailed", std::string("cannot signal the engine: ") + std::strerror(errno)};
  }
  a.policy_client = c ? c->id : 0;
  a.policy_deadline = now_s() + kPolicyTimeout;
  if (!c) a.policy_client = 0;
  return Json();  // deferred: the engine's policy record answers
}

Json Daemon::status_of(Attachment& a) {
  Json o(Json::Object{});
  o.set("name", a.name);
  o.set("state", state_name(a.state));
  o.set("mode", a.mode);
  o.set("globs", string_array(a.globs));
  o.set("qmp", a.qmp);
  o.set("node", a.node);
  o.set("filter_node", a.filter_node);
  o.set("image", a.image);
  o.set("disk", a.disk);
  o.set("read", a.export_id.empty() ? "file" : "nbd");
  o.set("disk_size", a.disk_size);
  if (a.state == State::Crawling) {
    Json cr(Json::Object{});
    cr.set("fraction", a.crawl_fraction);
    cr.set("file_system", int64_t(a.crawl_fs));
    cr.set("seconds", now_s() - a.crawl_started);
    o.set("crawl", cr);
  } else {
    o.set("crawl_seconds", a.crawl_seconds);
  }
  o.set("engine", a.engine > 0 ? Json("running") : a.engine_exit.empty() ? Json("not started") : Json("exited: " + a.engine_exit));
  o.set("engine_pid", int64_t(a.engine));
  o.set("engine_restarts", a.restarts);
  o.set("policy_generation", a.policy_generation);
  o.set("policy_changes", a.policy_changes);
  o.set("events", a.events);
  o.set("events_per_s", a.events_per_s);
  o.set("catching_up", a.catching_up);
  o.set("suppressed_events", a.suppressed);
  o.set("attached_s", now_s() - a.attached_at);
  Json lat(Json::Object{});
  lat.set("count", a.lat_count);
  lat.set("sum_s", a.lat_sum);
  o.set("latency_observed", lat);
  if (a.last_stats.is_object()) o.set("engine_stats", a.last_stats);
  o.set("gate", gate_stat_json(a.gate));
  Json ring_stat = ring_stat_json(a.ring);
  o.set("ring", ring_stat);
  o.set("gate_at_crawl", a.gate_at_crawl);
  // The ring's counters under the names the metrics use.
  Json ring(Json::Object{});
  if (const Json* v = ring_stat.get("valid"); v && v->is_bool() && v->as_bool()) {
    ring.set("frames", ring_stat.get_uint64("produced_frames"));
    ring.set("bytes", ring_stat.get_uint64("produced_bytes"));
    ring.set("dropped_frames", ring_stat.get_uint64("dropped_frames"));
    ring.set("dropped_bytes", ring_stat.get_uint64("dropped_bytes"));
    ring.set("lost_records", ring_stat.get_uint64("lost_records"));
    ring.set("lag_bytes", ring_stat.get_uint64("fill_bytes"));
  }
  o.set("ring_counters", ring);
  return o;
}

Json Daemon::status(const Json& args) {
  Json::Array list;
  std::string want = args.get_string("name");
  if (!want.empty()) find(args);
  for (auto& [name, a] : atts_) {
    if (!want.empty() && want != name) continue;
    if (a.kill_at < 0) continue;  // being erased
    list.push_back(status_of(a));
  }
  return Json(list);
}

// 'host:vm:/path/glob' -> ("host:vm" glob over names' first two fields, path glob).
Json Daemon::watch(const Json& args, Client* c) {
  std::string pat = args.get_string("pattern", "*:*:/**");
  size_t slash = pat.find(":/");
  if (slash == std::string::npos)
    throw CommandError{"InvalidArgument", "watch pattern must be HOST:VM:/PATH-GLOB, e.g. 'h1:vm1:/var/log/**'"};
  c->watch_host_vm = pat.substr(0, slash);
  if (Status s = Glob::compile(pat.substr(slash + 1), &c->watch_path); !s)
    throw CommandError{"InvalidArgument", s.message()};
  Glob hv;
  if (Status s = Glob::compile(c->watch_host_vm, &hv); !s) throw CommandError{"InvalidArgument", s.message()};
  c->watching = true;
  return Json(Json::Object{});
}

void Daemon::publish(const Attachment& a, Json ev) {
  std::string path = ev.get_string("path");
  size_t colon = a.name.rfind(':');
  std::string host_vm = colon == std::string::npos ? a.name : a.name.substr(0, colon);
  std::string msg;
  for (auto& c : clients_) {
    if (!c.watching) continue;
    Glob hv;
    if (!Glob::compile(c.watch_host_vm, &hv) || !hv.matches(host_vm)) continue;
    if (!path.empty() && !c.watch_path.matches(path)) continue;
    // Path-less events (overflow: the engine lost track) go to every watcher of the disk.
    if (msg.empty()) {
      Json out(Json::Object{});
      ev.set("disk", a.name);  // the engine's own "disk" is the image path
      out.set("event", "FILE");
      out.set("data", ev);
      msg = out.dump() + "\n";
    }
    send_to(c, msg);
  }
}

// "" when the header is not a valid ring's (the engine then replays nothing
// specially; docs/daemon-protocol.md).
std::string Daemon::ring_producer_index(const Attachment& a) {
  RingSnapshot s;
  std::string err;
  if (!InspectRing(a.ring, &s, &err) || !s.geometry_ok || !s.indices_ok) return "";
  return std::to_string(s.producer_index);
}

void Daemon::on_engine_record(Attachment& a, const Json& rec) {
  std::string kind = rec.get_string("engine");
  if (kind == "stats") {
    a.last_stats = rec;
    if (a.state == State::Starting) a.state = State::Running;  // its loop runs
  } else if (kind == "policy") {
    a.policy_generation = int64_t(rec.get_number("generation", double(a.policy_generation)));
    const Json* okj = rec.get("ok");
    bool ok = okj && okj->is_bool() && okj->as_bool();
    if (ok) {
      // The engine says what it applies now (also for a late answer).
      if (const Json* m = rec.get("mode"); m && m->is_string()) a.mode = m->as_string();
      if (const Json* g = rec.get("globs"); g && g->is_array()) {
        a.globs.clear();
        for (const auto& x : g->as_array())
          if (x.is_string()) a.globs.push_back(x.as_string());
      }
      a.last_policy = rec;
      if (a.policy_generation > 1) ++a.policy_changes;  // generation 1: the starting policy
      if (a.policy_client) {
        a.pending_ttl = a.policy_pending_ttl;
        a.pending_max = a.policy_pending_max;
      }
    }
    if (a.policy_client || a.policy_deadline > 0) {
      if (!ok) std::ofstream(a.policy_file, std::ios::trunc) << a.policy_backup;  // keep the one in force
      if (a.policy_client) {
        if (ok) {
          Json ret(Json::Object{});
          ret.set("name", a.name);
          ret.set("mode", a.mode);
          ret.set("globs", string_array(a.globs));
          ret.set("generation", a.policy_generation);
          ret.set("seconds", now_s() - (a.policy_deadline - kPolicyTimeout));
          ret.set("engine", rec);
          reply(a.policy_client, make_return(ret));
        } else {
          reply(a.policy_client, make_error("PolicyRefused", "the engine of '" + a.name + "' refused the policy: " +
                                                                  rec.get_string("error", "no reason given") +
                                                                  " (the previous policy stays in force)"));
        }
      }
      a.policy_client = 0;
      a.policy_deadline = 0;
    }
  } else if (kind == "ready") {
    if (a.state == State::Starting) a.state = State::Running;
    a.catching_up = rec.get_string("phase") == "replaying";
  }
}

void Daemon::on_engine_line(Attachment& a, const std::string& line) {
  Json ev;
  if (!Json::parse(line, &ev) || !ev.is_object()) {
    ++a.bad_lines;  // engine output we do not understand: skip
    return;
  }
  if (ev.get("engine")) return on_engine_record(a, ev);
  if (a.state == State::Starting) a.state = State::Running;  // an engine without ready records
  ++a.events;
  if (const Json* l = ev.get("latency_us"); l && l->is_number() && l->as_number() >= 0) {
    double s = l->as_number() / 1e6;
    a.lat_sum += s;
    ++a.lat_count;
    for (size_t i = 0; i < kNumBuckets; ++i)
      if (s <= kLatencyBuckets[i]) ++a.lat_buckets[i];
  }
  if (a.catching_up) ++a.suppressed;
  else publish(a, std::move(ev));
}

void Daemon::pump_engine(Attachment& a) {
  char buf[65536];
  while (a.engine_out >= 0) {
    ssize_t n = ::read(a.engine_out, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {  // engine exited (or closed stdout): reap() records why
      ::close(a.engine_out);
      a.engine_out = -1;
      break;
    }
    if (n < 0) break;
    a.out_buf.append(buf, size_t(n));
    size_t start = 0, nl;
    while ((nl = a.out_buf.find('\n', start)) != std::string::npos) {
      on_engine_line(a, a.out_buf.substr(start, nl - start));
      start = nl + 1;
    }
    a.out_buf.erase(0, start);
    if (a.out_buf.size() > daemon_internal::kMaxLine) {
      a.out_buf.clear();
      ++a.bad_lines;
    }
  }
}

void Daemon::engine_gone(Attachment& a) {
  std::fprintf(stderr, "dsvmi daemon: engine of %s exited (%s); log %s\n", a.name.c_str(), a.engine_exit.c_str(),
               a.log.c_str());
  if (a.policy_client) {
    std::ofstream(a.policy_file, std::ios::trunc) << a.policy_backup;  // the policy it ran with
    reply(a.policy_client, make_error("EngineFailed", "the engine of '" + a.name + "' exited (" + a.engine_exit +
                                                          ") during the policy change: " + last_log_line(a.log)));
    a.policy_client = 0;
    a.policy_deadline = 0;
  }
}

void Daemon::reap() {
  int st;
  pid_t pid;
  while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0) {
    std::string why = WIFEXITED(st) ? "status " + std::to_string(WEXITSTATUS(st)) : "signal " + std::to_string(WTERMSIG(st));
    for (auto& [n, a] : atts_) {
      if (a.engine == pid) {
        a.engine = -1;
        a.engine_exit = why;
        engine_gone(a);
      } else if (a.crawl == pid) {
        a.crawl_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        a.crawl = 0;  // reaped; crawl_finished once its output is read
      }
    }
  }
}

// Timers and state changes, outside any iteration over clients.
void Daemon::tick() {
  reap();
  double t = now_s();
  for (auto& [n, a] : atts_) {
    if (a.kill_at < 0) continue;
    if (a.state == State::Running || a.state == State::Starting) {
      if (t - a.rate_t >= 2) {
        a.events_per_s = double(a.events - a.rate_events) / (t - a.rate_t);
        a.rate_t = t;
        a.rate_events = a.events;
      }
    }
    switch (a.state) {
      case State::Crawling:
        if (a.crawl == 0 && a.crawl_out >= 0) pump_crawl(a);
        if (a.crawl == 0 && a.crawl_eof) crawl_finished(a);
        break;
      case State::Starting:
        if (a.engine <= 0 && a.engine_out < 0) {
          fail_attach(a, "EngineFailed", "the engine exited at start (" + a.engine_exit + "): " + last_log_line(a.log) +
                                             " (log " + a.log + ")");
        } else if (t - a.engine_started > kEngineReadySeconds) {
          fail_attach(a, "EngineFailed", "the engine did not get ready within " +
                                             std::to_string(int(kEngineReadySeconds)) + " s (log " + a.log + ")");
        }
        break;
      case State::Running:
        if (a.policy_client && t > a.policy_deadline) {
          std::ofstream(a.policy_file, std::ios::trunc) << a.policy_backup;
          reply(a.policy_client, make_error("EngineFailed", "the engine of '" + a.name + "' did not confirm the policy within " +
                                                                std::to_string(int(kPolicyTimeout)) + " s (log " + a.log + ")"));
          a.policy_client = 0;
          a.policy_deadline = 0;
        }
        break;
      case State::Detaching:
        if (a.engine > 0 && t > a.kill_at) {
          ::kill(a.engine, SIGKILL);
          a.detach_problems.push_back("the engine did not exit within " + std::to_string(int(kEngineStopSeconds)) +
                                      " s of SIGTERM: killed");
          a.kill_at = t + 3600;
        }
        if (a.engine <= 0 && a.engine_out < 0) finish_detach(a);
        break;
    }
    if ((a.state == State::Running) && a.attach_client) {
      Json ret(Json::Object{});
      ret.set("name", a.name);
      ret.set("filter_node", a.filter_node);
      ret.set("device", a.device);
      ret.set("image", a.image);
      ret.set("disk", a.disk);
      ret.set("engine_pid", int64_t(a.engine));
      ret.set("crawl_seconds", a.crawl_seconds);
      ret.set("seconds", t - a.attached_at);
      if (!a.replaced_filter.empty()) ret.set("replaced_stale_filter", a.replaced_filter);
      reply(a.attach_client, make_return(ret));
      a.attach_client = 0;
    }
  }
  for (auto it = atts_.begin(); it != atts_.end();) {
    if (it->second.kill_at < 0) it = atts_.erase(it);
    else ++it;
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

// Prometheus label values: backslash, quote and newline escaped.
std::string label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string num(double v) {
  if (std::isnan(v)) return "NaN";
  char b[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(b, sizeof b, "%.0f", v);
  else std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

std::string Daemon::metrics_text() {
  Json all = status(Json(Json::Object{}));
  std::ostringstream out;
  struct Metric {
    const char *name, *type, *help, *object, *key;
  };
  static const Metric kMetrics[] = {
      {"dsvmi_events_total", "counter", "File-level events emitted by the engine.", nullptr, "events"},
      {"dsvmi_events_per_second", "gauge", "Events per second over the last ~2 s.", nullptr, "events_per_s"},
      {"dsvmi_engine_restarts_total", "counter", "Engine restarts (none since policy changes are live).", nullptr, "engine_restarts"},
      {"dsvmi_policy_changes_total", "counter", "Live policy changes the engine applied.", nullptr, "policy_changes"},
      {"dsvmi_suppressed_events_total", "counter", "Events withheld while the engine caught up after attach.", nullptr, "suppressed_events"},
      {"dsvmi_gate_writes_passed_total", "counter", "Guest writes the gate passed into the ring.", "gate", "writes_passed"},
      {"dsvmi_gate_bytes_passed_total", "counter", "Bytes of guest writes the gate passed.", "gate", "bytes_passed"},
      {"dsvmi_gate_writes_dropped_total", "counter", "Guest writes the gate dropped.", "gate", "writes_dropped"},
      {"dsvmi_gate_bytes_dropped_total", "counter", "Bytes of guest writes the gate dropped.", "gate", "bytes_dropped"},
      {"dsvmi_gate_set_bytes", "gauge", "Bytes of the disk the gate passes (set mode).", "gate", "set_bytes"},
      {"dsvmi_ring_frames_total", "counter", "Frames QEMU wrote into the ring.", "ring_counters", "frames"},
      {"dsvmi_ring_bytes_total", "counter", "Bytes QEMU wrote into the ring.", "ring_counters", "bytes"},
      {"dsvmi_ring_dropped_frames_total", "counter", "Frames lost to a full ring.", "ring_counters", "dropped_frames"},
      {"dsvmi_ring_dropped_bytes_total", "counter", "Bytes lost to a full ring.", "ring_counters", "dropped_bytes"},
      {"dsvmi_ring_lost_records_total", "counter", "Lost-range records QEMU wrote (each needs a resync).", "ring_counters", "lost_records"},
      {"dsvmi_ring_lag_bytes", "gauge", "Bytes in the ring the engine has not consumed yet.", "ring_counters", "lag_bytes"},
      {"dsvmi_engine_frames_total", "counter", "Frames the engine consumed (its last stats record).", "engine_stats", "frames"},
      {"dsvmi_engine_write_bytes_total", "counter", "Write bytes the engine consumed (its last stats record).", "engine_stats", "write_bytes"},
      {"dsvmi_engine_resyncs_total", "counter", "Lost records the engine resynced from the disk (its last stats record).", "engine_stats", "lost_records"},
      {"dsvmi_engine_ring_lag_bytes", "gauge", "Ring lag the engine saw at its last stats record.", "engine_stats", "ring_lag_bytes"},
  };
  for (const Metric& m : kMetrics) {
    out << "# HELP " << m.name << " " << m.help << "\n# TYPE " << m.name << " " << m.type << "\n";
    for (const auto& a : all.as_array()) {
      const Json* src = m.object ? a.get(m.object) : &a;
      if (!src || !src->is_object() || !src->get(m.key) || !src->get(m.key)->is_number()) continue;
      out << m.name << "{disk=\"" << label(a.get_string("name")) << "\"} " << num(src->get_number(m.key)) << "\n";
    }
  }
  out << "# HELP dsvmi_engine_up 1 while the disk's engine runs.\n# TYPE dsvmi_engine_up gauge\n";
  for (const auto& a : all.as_array())
    out << "dsvmi_engine_up{disk=\"" << label(a.get_string("name")) << "\"} " << (a.get_string("engine") == "running") << "\n";
  out << "# HELP dsvmi_attachment_state 1 for the attachment's current state.\n# TYPE dsvmi_attachment_state gauge\n";
  for (const auto& a : all.as_array())
    for (const char* s : {"crawling", "starting", "running", "detaching"})
      out << "dsvmi_attachment_state{disk=\"" << label(a.get_string("name")) << "\",state=\"" << s << "\"} "
          << (a.get_string("state") == s) << "\n";
  out << "# HELP dsvmi_crawl_progress_ratio Fraction of the attach crawl done (1 once attached).\n"
         "# TYPE dsvmi_crawl_progress_ratio gauge\n";
  for (const auto& a : all.as_array()) {
    const Json* cr = a.get("crawl");
    out << "dsvmi_crawl_progress_ratio{disk=\"" << label(a.get_string("name")) << "\"} "
        << num(cr ? cr->get_number("fraction") : 1.0) << "\n";
  }
  // Engine-side quantiles of the last stats interval (a gauge per quantile:
  // quantiles of intervals cannot be aggregated, the histogram below can).
  out << "# HELP dsvmi_engine_event_latency_seconds Event latency (emission - frame time) quantiles over the engine's "
         "last stats interval.\n# TYPE dsvmi_engine_event_latency_seconds gauge\n";
  for (const auto& a : all.as_array()) {
    const Json* st = a.get("engine_stats");
    const Json* l = st ? st->get("latency_us") : nullptr;
    if (!l || !l->is_object()) continue;
    for (auto [q, k] : {std::pair{"0.5", "p50"}, std::pair{"0.99", "p99"}, std::pair{"1", "max"}})
      if (l->get(k) && l->get(k)->is_number())
        out << "dsvmi_engine_event_latency_seconds{disk=\"" << label(a.get_string("name")) << "\",quantile=\"" << q
            << "\"} " << num(l->get_number(k) / 1e6) << "\n";
  }
  out << "# HELP dsvmi_event_latency_seconds Event latency (emission - frame time) of every event the daemon "
         "received.\n# TYPE dsvmi_event_latency_seconds histogram\n";
  for (auto& [n, a] : atts_) {
    if (a.kill_at < 0) continue;
    std::string d = label(n);
    for (size_t i = 0; i < kNumBuckets; ++i)
      out << "dsvmi_event_latency_seconds_bucket{disk=\"" << d << "\",le=\"" << num(kLatencyBuckets[i]) << "\"} "
          << a.lat_buckets[i] << "\n";
    out << "dsvmi_event_latency_seconds_bucket{disk=\"" << d << "\",le=\"+Inf\"} " << a.lat_count << "\n";
    out << "dsvmi_event_latency_seconds_sum{disk=\"" << d << "\"} " << num(a.lat_sum) << "\n";
    out << "dsvmi_event_latency_seconds_count{disk=\"" << d << "\"} " << a.lat_count << "\n";
  }
  out << "# HELP dsvmi_attachments Attachments the daemon manages.\n# TYPE dsvmi_attachments gauge\n"
      << "dsvmi_attachments " << all.as_array().size() << "\n";
  return out.str();
}

void Daemon::write_metrics() {
  if (opt_.metrics_file.empty()) return;
  std::string tmp = opt_.metrics_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << metrics_text();
  }
  ::rename(tmp.c_str(), opt_.metrics_file.c_str());
}

void Daemon::accept_http(int lfd) {
  int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  if (http_.size() >= kMaxHttpConns) {  // a flood gets closed, the loop stays free
    ::close(fd);
    return;
  }
  http_.push_back(HttpConn{fd, {}, {}, 0, false, now_s() + kHttpTimeout});
}

std::string http_response(int code, const char* reason, const std::string& type, const std::string& body,
                          bool head, const char* extra = "") {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra + "\r\n";
  if (!head) r += body;
  return r;
}

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

void Daemon::handle_lines(Client& c) {
  size_t nl;
  while (!c.busy && (nl = c.buf.find('\n')) != std::string::npos) {
    std::string line = c.buf.substr(0, nl);
    c.buf.erase(0, nl + 1);
    std::string cmd;
    Json args;
    Json r;
    if (Status s = parse_request(line, &cmd, &args); !s) r = make_error("GenericError", s.message());
    else r = dispatch(cmd, args, &c);
    if (r.is_null()) {  // deferred: later requests of this client wait for it
      c.busy = true;
      break;
    }
    send_to(c, r.dump() + "\n");
    if (c.gone) break;
  }
}

Json Daemon::dispatch(const std::string& cmd, const Json& args, Client* c) {
  try {
    if (cmd == "attach") return attach(args, c);
    if (cmd == "detach") return detach(args, c);
    if (cmd == "status") return make_return(status(args));
    if (cmd == "policy-set") return policy_set(args, c);
    if (cmd == "watch") return make_return(watch(args, c));
    if (cmd == "ping") return make_return(Json(Json::Object{}));
    return make_error("CommandNotFound", "unknown command '" + cmd + "' (attach, detach, status, policy-set, watch, ping)");
  } catch (const CommandError& e) {
    return make_error(e.cls, e.desc);
  }
}

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

int Daemon::run() {
  ::mkdir(opt_.state_dir.c_str(), 0700);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (opt_.socket_path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "dsvmi daemon: socket path too long\n");
    return 2;
  }
  std::memcpy(addr.sun_path, opt_.socket_path.data(), opt_.socket_path.size());
  int probe;
  if (daemon_internal::connect_unix(opt_.socket_path, &probe)) {
    ::close(probe);
    std::fprintf(stderr, "dsvmi daemon: another daemon already serves %s\n", opt_.socket_path.c_str());
    return 1;
  }
  int hfd = -1;
  if (!opt_.metrics_listen.empty()) {
    std::string err;
    if ((hfd = listen_tcp(opt_.metrics_listen, &err)) < 0) {
      std::fprintf(stderr, "dsvmi daemon: %s\n", err.c_str());
      return 1;
    }
  }
  ::unlink(opt_.socket_path.c_str());  // stale socket of a dead daemon
  remove_stale_state(opt_.state_dir);
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  mode_t old = ::umask(0077);
  int brc = ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (brc != 0 || ::listen(lfd, 16) != 0) {
    std::fprintf(stderr, "dsvmi daemon: cannot listen on %s: %s\n", opt_.socket_path.c_str(), std::strerror(errno));
    return 1;
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
  enum Kind { kClient, kHttp, kEngine, kCrawl };
  struct Item {
    Kind kind;
    void* ptr;
    int fd;
  };
  while (!g_stop) {
    std::vector<pollfd> fds;
    std::vector<Item> items;
    fds.push_back({lfd, POLLIN, 0});
    fds.push_back({hfd, POLLIN, 0});  // -1: ignored by poll
    for (auto& c : clients_) {
      if (c.gone) continue;
      short ev = c.busy && c.buf.size() > daemon_internal::kMaxLine / 2 ? 0 : POLLIN;
      if (!c.out.empty()) ev |= POLLOUT;
      fds.push_back({c.fd, ev, 0});
      items.push_back({kClient, &c, c.fd});
    }
    for (auto& h : http_) {
      fds.push_back({h.fd, short(h.responding ? POLLOUT : POLLIN), 0});
      items.push_back({kHttp, &h, h.fd});
    }
    for (auto& [n, a] : atts_) {
      if (a.engine_out >= 0) {
        fds.push_back({a.engine_out, POLLIN, 0});
        items.push_back({kEngine, &a, a.engine_out});
      }
      if (a.crawl_out >= 0) {
        fds.push_back({a.crawl_out, POLLIN, 0});
        items.push_back({kCrawl, &a, a.crawl_out});
      }
    }
    int r = ::poll(fds.data(), fds.size(), 200);
    if (r > 0) {
      for (size_t k = 0; k < items.size(); ++k) {
        const pollfd& p = fds[k + 2];
        if (!p.revents) continue;
        Item& it = items[k];
        if (it.kind == kClient) {
          Client& c = *static_cast<Client*>(it.ptr);
          if (p.revents & POLLOUT) flush_client(c);
          if (!(p.revents & (POLLIN | POLLHUP | POLLERR)) || c.gone) continue;
          char buf[65536];
          ssize_t n = ::read(c.fd, buf, sizeof buf);
          if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
            c.gone = true;
            continue;
          }
          if (n > 0) c.buf.append(buf, size_t(n));
          handle_lines(c);
          if (c.buf.size() > daemon_internal::kMaxLine) ::shutdown(c.fd, SHUT_RDWR);
        } else if (it.kind == kHttp) {
          serve_http(*static_cast<HttpConn*>(it.ptr), p.revents);
        } else {
          // An attachment may have been detached (erased) meanwhile: only
          // tick() erases, so the pointer is valid; the fd may be closed.
          Attachment& a = *static_cast<Attachment*>(it.ptr);
          if (it.kind == kEngine && a.engine_out == it.fd) pump_engine(a);
          if (it.kind == kCrawl && a.crawl_out == it.fd) pump_crawl(a);
        }
      }
    }
    for (auto it = clients_.begin(); it != clients_.end();) {
      if (it->gone) {
        ::close(it->fd);
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
    double t = now_s();
    for (auto it = http_.begin(); it != http_.end();) {
      if (t > it->deadline) {
        ::close(it->fd);
        it = http_.erase(it);
      } else {
        ++it;
      }
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
    if (t - last_metrics >= 5) {
      write_metrics();
      last_metrics = t;
    }
  }
  std::fprintf(stderr, "dsvmi daemon: stopping, detaching %zu disk(s)\n", atts_.size());
  for (auto& [n, a] : atts_) {
    if (a.kill_at < 0) continue;
    kill_child(&a.crawl, &a.crawl_out);
    std::vector<std::string> problems;
    if (a.state != State::Detaching) unplug_filter(a, &problems);
    stop_engine_blocking(a);
    remove_export(a, &problems);
    remove_files(a);
    if (a.attach_client) reply(a.attach_client, make_error("Detached", "the daemon is stopping"));
    if (a.detach_client || a.policy_client) {
      Json ret(Json::Object{});
      ret.set("name", a.name);
      if (a.detach_client) reply(a.detach_client, make_return(ret));
      if (a.policy_client) reply(a.policy_client, make_error("Detached", "the daemon is stopping"));
    }
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
  ::close(lfd);
  if (hfd >= 0) ::close(hfd);
  ::unlink(opt_.socket_path.c_str());
  return 0;
}

}  // namespace

int run_daemon(const DaemonOptions& options) {
  Daemon d(options);
  return d.run();
}

}  // namespace dsvmi

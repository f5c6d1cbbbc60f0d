// The daemon's event loop: one thread, poll() over the listening socket, the
// client connections and each engine's stdout. Attach/detach/policy run to
// completion inside the loop (they take a crawl's time); engine output is
// buffered in the kernel pipe meanwhile.
#include "dsvmi/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Thrown inside request handlers only; turned into {"error": ...}.
struct CommandError {
  std::string cls, desc;
};

// Runs argv to completion, stdout+stderr captured together.
int run_capture(const std::vector<std::string>& argv, std::string* output) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (rc != 0) {
    ::close(p[0]);
    *output = std::string("cannot run ") + argv[0] + ": " + std::strerror(rc);
    return -1;
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (output->size() < (1 << 20)) output->append(buf, size_t(n));
  }
  ::close(p[0]);
  int st;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// "key: value" lines (gate-stat) into an object; numbers stay numbers.
Json parse_key_values(const std::string& text) {
  Json o(Json::Object{});
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t c = line.find(": ");
    if (c == std::string::npos) continue;
    std::string k = line.substr(0, c), v = line.substr(c + 2);
    char* end;
    double d = std::strtod(v.c_str(), &end);
    if (!v.empty() && *end == 0) o.set(k, d);
    else o.set(k, v);
  }
  return o;
}

struct Attachment {
  std::string name, qmp, node, filter_node, device, image, mode;
  std::vector<std::string> globs;
  std::string pending_ttl, pending_max;  // engine options ("" = its defaults)
  std::string gate_why;                  // the crawl's account of what the gate passes
  // Seed §2.6.1: no events until the engine has consumed every frame written
  // up to the end of the crawl (the model is inconsistent before that).
  bool catching_up = false;
  uint64_t catch_up_to = 0, suppressed = 0;
  uint64_t disk_size = 0;
  std::string ring, gate, index, log;
  pid_t engine = -1;
  int engine_out = -1;
  std::string out_buf;
  std::string engine_exit;  // "" while running
  uint64_t events = 0, restarts = 0;
  double attached_at = 0, rate_t = 0;
  uint64_t rate_events = 0;
  double events_per_s = 0;
};

struct Client {
  int fd;
  std::string buf;
  bool watching = false;
  std::string watch_host_vm;  // glob over "host:vm" (fnmatch-free: our Glob)
  Glob watch_path;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions o) : opt_(std::move(o)) {}
  int run();

 private:
  Json dispatch(const std::string& cmd, const Json& args, Client* c);
  Json attach(const Json& args);
  Json detach(const Json& args);
  Json status(const Json& args);
  Json policy_set(const Json& args);
  Json watch(const Json& args, Client* c);
  void crawl_and_start(Attachment& a);
  void start_engine(Attachment& a);
  void stop_engine(Attachment& a);
  // q: an open QMP connection to reuse (QEMU serves one client per QMP socket).
  void teardown(Attachment& a, std::vector<std::string>* problems, QmpClient* q = nullptr);
  void pump_engine(Attachment& a);
  bool ring_indices(const Attachment& a, uint64_t* producer, uint64_t* consumer);
  void check_caught_up(Attachment& a);
  void reap();
  void publish(const Attachment& a, const std::string& line);
  void write_metrics();
  std::string tool(std::vector<std::string> args, int* rc);
  Attachment& find(const Json& args);

  DaemonOptions opt_;
  std::map<std::string, Attachment> atts_;
  std::list<Client> clients_;
  uint64_t next_id_ = 0;
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
  if (v->is_string()) return v->as_string();
  if (v->is_number()) return Json(v->as_number()).dump();
  throw CommandError{"InvalidArgument", std::string(key) + " must be a string or a number"};
}

Json Daemon::attach(const Json& args) {
  Attachment a;
  a.pending_ttl = scalar(args, "pending_ttl", "");
  a.pending_max = scalar(args, "pending_max", "");
  a.qmp = args.get_string("qmp");
  a.node = args.get_string("node");
  a.mode = args.get_string("mode", "low-overhead");
  a.globs = string_list(args.get("globs"));
  if (a.qmp.empty() || a.node.empty()) throw CommandError{"InvalidArgument", "attach needs 'qmp' and 'node'"};
  if (a.mode != "low-overhead" && a.mode != "full")
    throw CommandError{"InvalidArgument", "mode must be low-overhead or full, not '" + a.mode + "'"};
  a.name = args.get_string("name", "localhost:" + a.node + ":" + a.node);
  if (atts_.count(a.name)) throw CommandError{"AlreadyAttached", "'" + a.name + "' is already attached (dsvmi detach it first)"};

  QmpClient q;
  if (Status s = q.connect(a.qmp); !s)
    throw CommandError{"QmpUnreachable", "QMP socket " + a.qmp + ": " + s.message() +
                                             " (start QEMU with -qmp unix:PATH,server=on,wait=off and pass that PATH)"};
  Json nodes, blocks, r;
  if (Status s = q.execute("query-named-block-nodes", Json(Json::Object{}), &nodes); !s)
    throw CommandError{"QmpError", "query-named-block-nodes: " + s.message()};
  const Json* node = nullptr;
  std::string names;
  for (const auto& n : nodes.as_array()) {
    names += (names.empty() ? "" : ", ") + n.get_string("node-name");
    if (n.get_string("node-name") == a.node) node = &n;
  }
  if (!node) throw CommandError{"NodeNotFound", "node '" + a.node + "' not found in this VM (its nodes: " + names + ")"};
  std::string drv = node->get_string("drv");
  if (drv != "raw" && drv != "file")
    throw CommandError{"Unsupported", "node '" + a.node + "' is a " + drv +
                                          " node; attach currently needs a raw image (qcow2 via NBD export is not implemented yet)"};
  a.image = node->get_string("file");
  if (a.image.empty() || a.image.rfind("json:", 0) == 0)
    throw CommandError{"Unsupported", "node '" + a.node + "' has no plain file name to crawl (" + a.image + ")"};
  if (const Json* img = node->get("image")) a.disk_size = uint64_t(img->get_number("virtual-size"));
  if (a.disk_size == 0) throw CommandError{"QmpError", "node '" + a.node + "' reports no virtual size"};

  if (Status s = q.execute("query-block", Json(Json::Object{}), &blocks); !s)
    throw CommandError{"QmpError", "query-block: " + s.message()};
  for (const auto& b : blocks.as_array()) {
    const Json* ins = b.get("inserted");
    if (ins && ins->get_string("node-name") == a.node) a.device = b.get_string("qdev");
  }
  if (a.device.empty())
    throw CommandError{"NodeNotFound", "no device's drive is node '" + a.node +
                                           "' (attach to the top node of a device: query-block's inserted.node-name)"};

  std::string id = std::to_string(::getpid()) + "-" + std::to_string(++next_id_);
  a.filter_node = "dsvmi-" + std::to_string(next_id_);
  a.ring = opt_.state_dir + "/ring-" + id;
  a.gate = opt_.state_dir + "/gate-" + id;
  a.index = opt_.state_dir + "/index-" + id;
  a.log = opt_.state_dir + "/engine-" + id + ".log";
  int rc;
  std::vector<std::string> problems;
  std::string out = tool({"ring-create", a.ring, "--size", scalar(args, "ring_size", "64M")}, &rc);
  if (rc != 0) throw CommandError{"RingFailed", out};
  // Pass-all while the crawl runs: nothing the guest writes meanwhile is missed.
  out = tool({"gate-create", a.gate, "--disk-size", std::to_string(a.disk_size), "--mode", "pass-all"}, &rc);
  if (rc != 0) {
    ::unlink(a.ring.c_str());
    throw CommandError{"GateFailed", out};
  }
  Json add(Json::Object{});
  add.set("driver", "dsvmi");
  add.set("node-name", a.filter_node);
  add.set("file", a.node);
  add.set("ring", a.ring);
  add.set("gate", a.gate);
  add.set("discard", "unmap");
  if (Status s = q.execute("blockdev-add", add, &r); !s) {
    ::unlink(a.ring.c_str());
    ::unlink(a.gate.c_str());
    if (s.message().find("'dsvmi'") != std::string::npos)
      throw CommandError{"UnpatchedQemu", "this QEMU has no dsvmi filter driver (" + s.message() +
                                              "): run the patched QEMU built by qemu-patches/build.sh"};
    throw CommandError{"QmpError", "blockdev-add of the filter: " + s.message()};
  }
  Json set(Json::Object{});
  set.set("path", a.device);
  set.set("property", "drive");
  set.set("value", a.filter_node);
  if (Status s = q.execute("qom-set", set, &r); !s) {
    Json del(Json::Object{});
    del.set("node-name", a.filter_node);
    q.execute("blockdev-del", del, &r);
    ::unlink(a.ring.c_str());
    ::unlink(a.gate.c_str());
    throw CommandError{"QmpError", "qom-set " + a.device + " drive: " + s.message()};
  }
  a.attached_at = now_s();
  try {
    crawl_and_start(a);
  } catch (const CommandError&) {
    teardown(a, &problems, &q);
    throw;
  }
  Json ret(Json::Object{});
  ret.set("name", a.name);
  ret.set("filter_node", a.filter_node);
  ret.set("device", a.device);
  ret.set("image", a.image);
  ret.set("engine_pid", int64_t(a.engine));
  atts_.emplace(a.name, std::move(a));
  return ret;
}

void Daemon::crawl_and_start(Attachment& a) {
  int rc;
  // The crawl reads the image while the guest writes it; every write since
  // the filter went in is in the ring (gate pass-all) and the engine replays
  // them after the crawl before emitting events for them.
  std::vector<std::string> crawl = {"crawl", a.image, "--index", a.index};
  if (a.mode == "low-overhead") {
    // Publishes the policy's grains (metadata + watched files' data) into the
    // gate, replacing pass-all; the engine keeps it in step from then on.
    crawl.insert(crawl.end(), {"--gate", a.gate, "--policy", a.globs.empty() ? "metadata" : "glob"});
    for (const auto& g : a.globs) crawl.insert(crawl.end(), {"--glob", g});
  }
  std::string out = tool(crawl, &rc);
  if (rc != 0) {
    std::string last = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    throw CommandError{"CrawlFailed", "crawl of " + a.image + " failed: " + last +
                                          " (only ext2/3/4 on MBR/GPT or bare is supported)"};
  }
  if (out.find("total        0 file system(s)") != std::string::npos) {
    std::string skipped;
    for (size_t p = out.find("skipped"); p != std::string::npos; p = out.find("skipped", p + 1))
      skipped += " " + out.substr(p, out.find('\n', p) - p);
    throw CommandError{"UnsupportedFileSystem", "no supported file system on " + a.image + " (" +
                                                    (skipped.empty() ? "nothing recognised" : skipped.substr(1)) +
                                                    "); dsvmi watches ext2/3/4"};
  }
  uint64_t producer = 0, consumer = 0;
  a.catching_up = ring_indices(a, &producer, &consumer);
  a.catch_up_to = producer;
  a.gate_why.clear();
  if (size_t g = out.find("\ngate "); g != std::string::npos) {
    size_t colon = out.find(": ", g);
    size_t end = out.find('\n', g + 1);
    if (colon != std::string::npos && colon < end) a.gate_why = out.substr(colon + 2, end - colon - 2);
  }
  start_engine(a);
}

void Daemon::start_engine(Attachment& a) {
  // `dsvmi run` flushes its events after every burst it reads from a live
  // ring, so watchers see them as they happen through this pipe.
  std::vector<std::string> argv = {opt_.self_exe, "run", "--ring", a.ring,
                                   "--index", a.index, "--disk", a.image};
  if (a.mode == "full") {
    argv.push_back("--policy");
    argv.push_back("pass-all");
  } else {
    if (a.globs.empty()) {
      argv.push_back("--policy");
      argv.push_back("metadata");
    }
    for (const auto& g : a.globs) {
      argv.push_back("--policy");
      argv.push_back("glob:" + g);
    }
    argv.push_back("--gate");
    argv.push_back(a.gate);
  }
  if (!a.pending_ttl.empty()) argv.insert(argv.end(), {"--pending-ttl", a.pending_ttl});
  if (!a.pending_max.empty()) argv.insert(argv.end(), {"--pending-max", a.pending_max});
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw CommandError{"EngineFailed", std::strerror(errno)};
  int log = ::open(a.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  if (log >= 0) posix_spawn_file_actions_adddup2(&fa, log, 2);
  std::vector<char*> args;
  for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (log >= 0) ::close(log);
  if (rc != 0) {
    ::close(p[0]);
    throw CommandError{"EngineFailed", std::string("cannot start the engine: ") + std::strerror(rc)};
  }
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  a.engine = pid;
  a.engine_out = p[0];
  a.engine_exit.clear();
  a.rate_t = now_s();
  a.rate_events = a.events;
}

void Daemon::stop_engine(Attachment& a) {
  if (a.engine > 0) {
    ::kill(a.engine, SIGTERM);
    int st;
    bool gone = false;
    // Keep reading its stdout meanwhile: an engine flushing its last events
    // into a full pipe would otherwise never exit.
    for (int i = 0; i < 200 && !gone; ++i) {
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

// Filter out of the guest's path first (seed §2.6.2), then the engine, then
// files. Works with the engine already dead and with QEMU gone.
void Daemon::teardown(Attachment& a, std::vector<std::string>* problems, QmpClient* open) {
  QmpClient own;
  QmpClient& q = open ? *open : own;
  if (Status s = open ? Status::ok() : own.connect(a.qmp); !s) {
    problems->push_back("QMP " + a.qmp + ": " + s.message() + " (VM gone? filter removal skipped)");
  } else {
    Json r, set(Json::Object{});
    set.set("path", a.device);
    set.set("property", "drive");
    set.set("value", a.node);
    if (Status s2 = q.execute("qom-set", set, &r); !s2) problems->push_back("qom-set back: " + s2.message());
    Json del(Json::Object{});
    del.set("node-name", a.filter_node);
    if (Status s2 = q.execute("blockdev-del", del, &r); !s2) problems->push_back("blockdev-del: " + s2.message());
  }
  stop_engine(a);
  ::unlink(a.ring.c_str());
  ::unlink(a.gate.c_str());
  ::unlink(a.index.c_str());
}

Json Daemon::detach(const Json& args) {
  Attachment& a = find(args);
  std::vector<std::string> problems;
  double t0 = now_s();
  teardown(a, &problems);
  Json ret(Json::Object{});
  ret.set("name", a.name);
  ret.set("events", a.events);
  ret.set("seconds", now_s() - t0);
  Json::Array p;
  for (auto& s : problems) p.push_back(Json(s));
  ret.set("problems", Json(p));
  atts_.erase(a.name);
  return ret;
}

Json Daemon::policy_set(const Json& args) {
  Attachment& a = find(args);
  std::string mode = args.get_string("mode", a.mode);
  if (mode != "low-overhead" && mode != "full")
    throw CommandError{"InvalidArgument", "mode must be low-overhead or full, not '" + mode + "'"};
  std::vector<std::string> globs = args.get("globs") ? string_list(args.get("globs")) : a.globs;
  a.pending_ttl = scalar(args, "pending_ttl", a.pending_ttl);
  a.pending_max = scalar(args, "pending_max", a.pending_max);
  // The engine owns the gate while it runs: stop it (frames keep arriving in
  // the ring), pass everything while the index is rebuilt, then start an
  // engine with the new policy. The old policy's grains are cleared: the
  // crawl only adds the new policy's.
  stop_engine(a);
  int rc;
  std::string out = tool({"gate-set", a.gate, "--mode", "pass-all", "--clear-all"}, &rc);
  if (rc != 0) throw CommandError{"GateFailed", out};
  a.mode = mode;
  a.globs = globs;
  ++a.restarts;
  crawl_and_start(a);
  Json ret(Json::Object{});
  ret.set("name", a.name);
  ret.set("mode", a.mode);
  Json::Array g;
  for (auto& s : a.globs) g.push_back(Json(s));
  ret.set("globs", Json(g));
  return ret;
}

Json Daemon::status(const Json& args) {
  Json::Array list;
  std::string want = args.get_string("name");
  if (!want.empty()) find(args);
  for (auto& [name, a] : atts_) {
    if (!want.empty() && want != name) continue;
    Json o(Json::Object{});
    o.set("name", name);
    o.set("mode", a.mode);
    Json::Array g;
    for (auto& s : a.globs) g.push_back(Json(s));
    o.set("globs", Json(g));
    o.set("qmp", a.qmp);
    o.set("node", a.node);
    o.set("filter_node", a.filter_node);
    o.set("image", a.image);
    o.set("disk_size", a.disk_size);
    o.set("engine", a.engine > 0 ? Json("running") : Json("exited: " + a.engine_exit));
    o.set("engine_pid", int64_t(a.engine));
    o.set("engine_restarts", a.restarts);
    o.set("events", a.events);
    o.set("events_per_s", a.events_per_s);
    o.set("catching_up", a.catching_up);
    o.set("suppressed_events", a.suppressed);
    o.set("attached_s", now_s() - a.attached_at);
    int rc;
    std::string gate = tool({"gate-stat", a.gate}, &rc);
    o.set("gate", rc == 0 ? parse_key_values(gate) : Json(gate));
    o.set("ring", tool({"ring-stat", a.ring}, &rc));
    o.set("gate_at_crawl", a.gate_why);
    // "producer: produced N frames / B bytes, dropped N frames / B bytes, lost records L"
    Json ring(Json::Object{});
    std::string text = o.get_string("ring");
    unsigned long long pf = 0, pb = 0, df = 0, db = 0, lost = 0;
    if (size_t p = text.find("producer:"); p != std::string::npos &&
        std::sscanf(text.c_str() + p, "producer: produced %llu frames / %llu bytes, dropped %llu frames / %llu bytes, lost records %llu",
                    &pf, &pb, &df, &db, &lost) == 5) {
      ring.set("frames", uint64_t(pf));
      ring.set("bytes", uint64_t(pb));
      ring.set("dropped_frames", uint64_t(df));
      ring.set("dropped_bytes", uint64_t(db));
      ring.set("lost_records", uint64_t(lost));
    }
    o.set("ring_counters", ring);
    list.push_back(o);
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

void Daemon::publish(const Attachment& a, const std::string& line) {
  Json ev;
  if (!Json::parse(line, &ev) || !ev.is_object()) return;  // engine output we do not understand: skip
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
    if (!daemon_internal::write_all(c.fd, msg)) {
      ::shutdown(c.fd, SHUT_RDWR);  // slow or gone watcher: drop it, reaped by the loop
    }
  }
}

bool Daemon::ring_indices(const Attachment& a, uint64_t* producer, uint64_t* consumer) {
  int rc;
  std::string text = tool({"ring-stat", a.ring}, &rc);
  unsigned long long p = 0, c = 0;
  size_t at = text.find("indices:");
  if (rc != 0 || at == std::string::npos ||
      std::sscanf(text.c_str() + at, "indices: producer %llu, consumer %llu", &p, &c) != 2)
    return false;
  *producer = p;
  *consumer = c;
  return true;
}

void Daemon::check_caught_up(Attachment& a) {
  if (!a.catching_up) return;
  uint64_t producer, consumer;
  if (!ring_indices(a, &producer, &consumer) || consumer >= a.catch_up_to || a.engine <= 0) a.catching_up = false;
}

void Daemon::pump_engine(Attachment& a) {
  char buf[65536];
  bool checked = false;
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
    size_t nl;
    while ((nl = a.out_buf.find('\n')) != std::string::npos) {
      std::string line = a.out_buf.substr(0, nl);
      a.out_buf.erase(0, nl + 1);
      ++a.events;
      if (a.catching_up && !checked) {
        check_caught_up(a);
        checked = true;
      }
      if (a.catching_up) ++a.suppressed;
      else publish(a, line);
    }
    if (a.out_buf.size() > daemon_internal::kMaxLine) a.out_buf.clear();
  }
}

void Daemon::reap() {
  int st;
  pid_t pid;
  while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0) {
    for (auto& [n, a] : atts_) {
      if (a.engine != pid) continue;
      a.engine = -1;
      a.engine_exit = WIFEXITED(st) ? "status " + std::to_string(WEXITSTATUS(st))
                                    : "signal " + std::to_string(WTERMSIG(st));
      std::fprintf(stderr, "dsvmi daemon: engine of %s exited (%s); log %s\n", n.c_str(), a.engine_exit.c_str(),
                   a.log.c_str());
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

void Daemon::write_metrics() {
  if (opt_.metrics_file.empty()) return;
  Json all = status(Json(Json::Object{}));
  struct Metric {
    const char *name, *type, *help, *object, *key;
  };
  static const Metric kMetrics[] = {
      {"dsvmi_events_total", "counter", "File-level events emitted by the engine.", nullptr, "events"},
      {"dsvmi_engine_restarts_total", "counter", "Engine restarts (policy changes).", nullptr, "engine_restarts"},
      {"dsvmi_gate_writes_passed_total", "counter", "Guest writes the gate passed into the ring.", "gate", "writes_passed"},
      {"dsvmi_gate_bytes_passed_total", "counter", "Bytes of guest writes the gate passed.", "gate", "bytes_passed"},
      {"dsvmi_gate_writes_dropped_total", "counter", "Guest writes the gate dropped.", "gate", "writes_dropped"},
      {"dsvmi_gate_bytes_dropped_total", "counter", "Bytes of guest writes the gate dropped.", "gate", "bytes_dropped"},
      {"dsvmi_gate_set_bytes", "gauge", "Bytes of the disk the gate passes (set mode).", "gate", "set_bytes"},
      {"dsvmi_ring_frames_total", "counter", "Frames QEMU wrote into the ring.", "ring_counters", "frames"},
      {"dsvmi_ring_dropped_frames_total", "counter", "Frames lost to a full ring.", "ring_counters", "dropped_frames"},
      {"dsvmi_ring_lost_records_total", "counter", "Lost-range records (resyncs needed).", "ring_counters", "lost_records"},
  };
  std::string tmp = opt_.metrics_file + ".tmp";
  std::ofstream out(tmp);
  for (const Metric& m : kMetrics) {
    out << "# HELP " << m.name << " " << m.help << "\n# TYPE " << m.name << " " << m.type << "\n";
    for (const auto& a : all.as_array()) {
      const Json* src = m.object ? a.get(m.object) : &a;
      if (!src || !src->get(m.key)) continue;
      out << m.name << "{disk=\"" << label(a.get_string("name")) << "\"} " << uint64_t(src->get_number(m.key)) << "\n";
    }
  }
  out << "# HELP dsvmi_engine_up 1 while the disk's engine runs.\n# TYPE dsvmi_engine_up gauge\n";
  for (const auto& a : all.as_array())
    out << "dsvmi_engine_up{disk=\"" << label(a.get_string("name")) << "\"} " << (a.get_string("engine") == "running") << "\n";
  out.close();
  ::rename(tmp.c_str(), opt_.metrics_file.c_str());
}

Json Daemon::dispatch(const std::string& cmd, const Json& args, Client* c) {
  try {
    if (cmd == "attach") return make_return(attach(args));
    if (cmd == "detach") return make_return(detach(args));
    if (cmd == "status") return make_return(status(args));
    if (cmd == "policy-set") return make_return(policy_set(args));
    if (cmd == "watch") return make_return(watch(args, c));
    if (cmd == "ping") return make_return(Json(Json::Object{}));
    return make_error("CommandNotFound", "unknown command '" + cmd + "' (attach, detach, status, policy-set, watch, ping)");
  } catch (const CommandError& e) {
    return make_error(e.cls, e.desc);
  }
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
  ::unlink(opt_.socket_path.c_str());  // stale socket of a dead daemon
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
  std::fprintf(stderr, "dsvmi daemon: listening on %s (state in %s)\n", opt_.socket_path.c_str(), opt_.state_dir.c_str());
  double last_metrics = 0;
  while (!g_stop) {
    std::vector<pollfd> fds;
    fds.push_back({lfd, POLLIN, 0});
    for (auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
    std::vector<Attachment*> engines;
    for (auto& [n, a] : atts_)
      if (a.engine_out >= 0) {
        fds.push_back({a.engine_out, POLLIN, 0});
        engines.push_back(&a);
      }
    int r = ::poll(fds.data(), fds.size(), 500);
    reap();
    double t = now_s();
    for (auto& [n, a] : atts_) {
      if (t - a.rate_t >= 2) {
        a.events_per_s = double(a.events - a.rate_events) / (t - a.rate_t);
        a.rate_t = t;
        a.rate_events = a.events;
      }
      check_caught_up(a);
    }
    if (t - last_metrics >= 5) {
      write_metrics();
      last_metrics = t;
    }
    if (r <= 0) continue;
    const size_t engine_base = 1 + clients_.size();
    size_t i = 1;
    for (auto it = clients_.begin(); it != clients_.end(); ++i) {
      Client& c = *it;
      bool drop = false;
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[65536];
        ssize_t n = ::read(c.fd, buf, sizeof buf);
        if (n <= 0) drop = true;
        else c.buf.append(buf, size_t(n));
        size_t nl;
        while (!drop && (nl = c.buf.find('\n')) != std::string::npos) {
          std::string line = c.buf.substr(0, nl);
          c.buf.erase(0, nl + 1);
          std::string cmd;
          Json args;
          Json reply;
          if (Status s = parse_request(line, &cmd, &args); !s) reply = make_error("GenericError", s.message());
          else reply = dispatch(cmd, args, &c);
          if (!daemon_internal::write_all(c.fd, reply.dump() + "\n")) drop = true;
        }
        if (c.buf.size() > daemon_internal::kMaxLine) drop = true;
      }
      if (drop) {
        ::close(c.fd);
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
    for (size_t k = 0; k < engines.size(); ++k) {
      const pollfd& p = fds[engine_base + k];
      if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      // A client command may have detached (erased) it or restarted it.
      bool live = false;
      for (auto& [n, a] : atts_) live |= (&a == engines[k] && a.engine_out == p.fd);
      if (live) pump_engine(*engines[k]);
    }
    if (fds[0].revents & POLLIN) {
      int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd >= 0) clients_.push_back(Client{cfd, {}, false, {}, {}});
    }
  }
  std::fprintf(stderr, "dsvmi daemon: stopping, detaching %zu disk(s)\n", atts_.size());
  for (auto& [n, a] : atts_) {
    std::vector<std::string> problems;
    teardown(a, &problems);
  }
  for (auto& c : clients_) ::close(c.fd);
  ::close(lfd);
  ::unlink(opt_.socket_path.c_str());
  return 0;
}

}  // namespace

int run_daemon(const DaemonOptions& options) {
  Daemon d(options);
  return d.run();
}

}  // namespace dsvmi

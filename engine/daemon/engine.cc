// The running attachment: the engine's records and events, live policy
// changes, watchers, and detach (docs/daemon-protocol.md).
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "daemon_impl.h"
#include "line_socket.h"

namespace dsvmi::daemon_internal {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void restore(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

}  // namespace

void Latency::observe(double s) {
  sum += s;
  ++count;
  for (size_t i = 0; i < kNumBuckets; ++i)
    if (s <= kLatencyBuckets[i]) ++buckets[i];
}

Reply Daemon::detach(const Json& args, Client* c) {
  Attachment* ap;
  if (Status s = find(args, &ap); !s) return Reply::fail(s);
  Attachment& a = *ap;
  if (a.state == State::Detaching)
    return Reply::fail(Status::error("NotAttached", "'" + a.name + "' is being detached already"));
  a.detach_started = now_s();
  a.detach_problems.clear();
  a.detach_client = c ? c->id : 0;
  if (a.attach_client) {
    reply(a.attach_client, make_error("Detached", "'" + a.name + "' was detached before its attach completed"));
    a.attach_client = 0;
  }
  if (a.policy.client) {
    reply(a.policy.client, make_error("Detached", "'" + a.name + "' was detached during the policy change"));
    a.policy.client = 0;
  }
  a.crawl.child.kill();  // attach still crawling: stop it
  // 1. the guest's path first: from here on the VM no longer depends on us.
  unplug_filter(a, &a.detach_problems);
  // 2. the engine drains every frame already in the ring, then exits; the
  // loop keeps publishing its events and finishes the detach when it is gone.
  a.state = State::Detaching;
  a.kill_at = now_s() + kEngineStopSeconds;
  a.engine.child.signal(SIGTERM);
  return Reply::later();  // finish_detach replies
}

void Daemon::finish_detach(Attachment& a) {
  remove_export(a, &a.detach_problems);
  remove_files(a);
  if (a.detach_client) {
    Json ret(Json::Object{});
    ret.set("name", a.name);
    ret.set("events", a.engine.events);
    ret.set("seconds", now_s() - a.detach_started);
    ret.set("problems", string_array(a.detach_problems));
    if (a.engine.child.exited()) ret.set("engine_exit", a.engine.child.exit_text());
    reply(a.detach_client, make_return(ret));
  }
  a.detach_client = 0;
  a.kill_at = -1;  // erase at the next safe point
}

Reply Daemon::policy_set(const Json& args, Client* c) {
  Attachment* ap;
  if (Status s = find(args, &ap); !s) return Reply::fail(s);
  Attachment& a = *ap;
  if (a.state != State::Running)
    return Reply::fail(Status::error("Busy", "'" + a.name + "' is " + state_name(a.state) + "; policy set needs a running engine"));
  if (a.policy.client) return Reply::fail(Status::error("Busy", "a policy change of '" + a.name + "' is in progress"));
  if (!a.engine.child.running())
    return Reply::fail(Status::error("EngineFailed", "the engine of '" + a.name + "' is not running (exited: " +
                                                         a.engine.child.exit_text() + "; log " + a.log +
                                                         "); detach and attach again"));
  std::string mode = args.get_string("mode", a.mode);
  if (mode != "low-overhead" && mode != "full")
    return Reply::fail(Status::error("InvalidArgument", "mode must be low-overhead or full, not '" + mode + "'"));
  std::vector<std::string> globs = a.globs;
  std::string ttl, max;
  Status s;
  if ((args.get("globs") && !(s = string_list(args.get("globs"), &globs))) ||
      !(s = scalar(args, "pending_ttl", a.pending_ttl, &ttl)) || !(s = scalar(args, "pending_max", a.pending_max, &max)))
    return Reply::fail(s);
  // Hash globs are the engine's start options (docs/hashes.md).
  HashSettings hash = a.hash;
  if (!(s = hash.parse(args))) return Reply::fail(s);
  if (!(hash == a.hash))
    return Reply::fail(Status::error("InvalidArgument", "hash, hash_max, diff_max and diff_bytes are fixed while attached; "
                                                        "detach and attach again to change them"));
  // The engine re-reads the file on SIGHUP and answers with one
  // {"engine":"policy"} record; no restart, the ring keeps flowing.
  a.policy.backup = read_file(a.policy_file);
  if (!(s = write_policy_file(a.policy_file, mode, globs, ttl, max, a.hash))) return Reply::fail(s);
  a.policy.pending_ttl = ttl;
  a.policy.pending_max = max;
  if (::kill(a.engine.child.pid(), SIGHUP) != 0) {
    restore(a.policy_file, a.policy.backup);
    return Reply::fail(Status::error("EngineFailed", std::string("cannot signal the engine: ") + std::strerror(errno)));
  }
  a.policy.client = c ? c->id : 0;
  a.policy.deadline = now_s() + kPolicyTimeout;
  return Reply::later();  // the engine's policy record answers
}

// The engine's {"engine": "policy"} record: what it applies now (also for
// a late answer), and the answer to a policy change in flight.
void Daemon::policy_answered(Attachment& a, const Json& rec, bool ok) {
  if (ok) {
    if (const Json* m = rec.get("mode"); m && m->is_string()) a.mode = m->as_string();
    if (const Json* g = rec.get("globs"); g && g->is_array()) {
      a.globs.clear();
      for (const auto& x : g->as_array())
        if (x.is_string()) a.globs.push_back(x.as_string());
    }
    a.last_policy = rec;
    if (a.policy_generation > 1) ++a.policy_changes;  // generation 1: the starting policy
    if (a.policy.client) {
      a.pending_ttl = a.policy.pending_ttl;
      a.pending_max = a.policy.pending_max;
    }
  }
  if (!a.policy.client && a.policy.deadline <= 0) return;
  if (!ok) restore(a.policy_file, a.policy.backup);  // keep the one in force
  if (a.policy.client && ok) {
    Json ret(Json::Object{});
    ret.set("name", a.name);
    ret.set("mode", a.mode);
    ret.set("globs", string_array(a.globs));
    ret.set("generation", a.policy_generation);
    ret.set("seconds", now_s() - (a.policy.deadline - kPolicyTimeout));
    ret.set("engine", rec);
    reply(a.policy.client, make_return(ret));
  } else if (a.policy.client) {
    reply(a.policy.client, make_error("PolicyRefused", "the engine of '" + a.name + "' refused the policy: " +
                                                           rec.get_string("error", "no reason given") +
                                                           " (the previous policy stays in force)"));
  }
  a.policy.client = 0;
  a.policy.deadline = 0;
}

// A policy change that will get no answer: the file back as it was, the
// client told why.
void Daemon::policy_failed(Attachment& a, const std::string& cls, const std::string& desc) {
  restore(a.policy_file, a.policy.backup);
  reply(a.policy.client, make_error(cls, desc));
  a.policy.client = 0;
  a.policy.deadline = 0;
}

void Daemon::on_engine_record(Attachment& a, const Json& rec) {
  std::string kind = rec.get_string("engine");
  if (kind == "stats") {
    a.engine.last_stats = rec;
    if (a.state == State::Starting) a.state = State::Running;  // its loop runs
  } else if (kind == "policy") {
    a.policy_generation = rec.get_int64("generation", a.policy_generation);
    const Json* okj = rec.get("ok");
    policy_answered(a, rec, okj && okj->is_bool() && okj->as_bool());
  } else if (kind == "ready") {
    if (a.state == State::Starting) a.state = State::Running;
    a.engine.catching_up = rec.get_string("phase") == "replaying";
  }
}

void Daemon::on_engine_line(Attachment& a, const std::string& line) {
  Json ev;
  if (!Json::parse(line, &ev) || !ev.is_object()) {
    ++a.engine.bad_lines;  // engine output we do not understand: skip
    return;
  }
  if (ev.get("engine")) return on_engine_record(a, ev);
  if (a.state == State::Starting) a.state = State::Running;  // an engine without ready records
  ++a.engine.events;
  if (const Json* l = ev.get("latency_us"); l && l->is_number() && l->as_number() >= 0)
    a.latency.observe(l->as_number() / 1e6);
  if (a.engine.catching_up) ++a.engine.suppressed;
  else publish(a, std::move(ev));
}

void Daemon::read_engine(Attachment& a) {
  uint64_t before = a.engine.child.overlong();
  a.engine.child.read_lines([&](const std::string& line) { on_engine_line(a, line); }, kMaxLine);
  a.engine.bad_lines += a.engine.child.overlong() - before;
}

void Daemon::engine_gone(Attachment& a) {
  std::fprintf(stderr, "dsvmi daemon: engine of %s exited (%s); log %s\n", a.name.c_str(),
               a.engine.child.exit_text().c_str(), a.log.c_str());
  if (a.policy.client)
    policy_failed(a, "EngineFailed", "the engine of '" + a.name + "' exited (" + a.engine.child.exit_text() +
                                         ") during the policy change: " + last_log_line(a.log));
}

// Only for the daemon's own shutdown: waits (bounded) for the engine to
// drain, reading its output meanwhile.
void Daemon::stop_engine_blocking(Attachment& a) {
  Child& e = a.engine.child;
  if (e.running()) {
    e.signal(SIGTERM);
    for (int i = 0; i < int(kEngineStopSeconds * 20) && e.running(); ++i) {
      int st;
      pid_t r = ::waitpid(e.pid(), &st, WNOHANG);
      if (r == e.pid()) {
        e.reaped(st);
      } else if (r < 0 && errno == ECHILD) {
        break;
      } else {
        pollfd p = {e.fd(), POLLIN, 0};
        if (e.fd() >= 0 && ::poll(&p, 1, 50) > 0) read_engine(a);
        else if (e.fd() < 0) ::usleep(50 * 1000);
      }
    }
    if (e.running()) e.kill();
  }
  e.drain([&](const std::string& line) { on_engine_line(a, line); }, kMaxLine);  // gone: read to EOF
}

// 'host:vm:/path/glob' -> ("host:vm" glob over names' first two fields, path glob).
Reply Daemon::watch(const Json& args, Client* c) {
  std::string pat = args.get_string("pattern", "*:*:/**");
  size_t slash = pat.find(":/");
  if (slash == std::string::npos)
    return Reply::fail(Status::error("InvalidArgument", "watch pattern must be HOST:VM:/PATH-GLOB, e.g. 'h1:vm1:/var/log/**'"));
  Glob hv;
  if (Status s = Glob::compile(pat.substr(0, slash), &hv); !s) return Reply::fail(Status::error("InvalidArgument", s.message()));
  if (Status s = Glob::compile(pat.substr(slash + 1), &c->watch_path); !s)
    return Reply::fail(Status::error("InvalidArgument", s.message()));
  c->watch_host_vm = pat.substr(0, slash);
  c->watching = true;
  return Reply::now(Json(Json::Object{}));
}

void Daemon::publish(const Attachment& a, Json ev) {
  ev.set("disk", a.name);  // the engine's own "disk" is the image path
  if (opt_.tap) opt_.tap->on_event(a.name, ev);
  std::string path = ev.get_string("path");
  size_t colon = a.name.rfind(':');
  std::string host_vm = colon == std::string::npos ? a.name : a.name.substr(0, colon);
  std::string msg;
  for (auto& c : clients_) {
    if (!c.watching) continue;
    Glob hv;
    if (!Glob::compile(c.watch_host_vm, &hv) || !hv.matches(host_vm)) continue;
    // Path-less events (overflow: the engine lost track) go to every watcher of the disk.
    if (!path.empty() && !c.watch_path.matches(path)) continue;
    if (msg.empty()) {
      Json out(Json::Object{});
      out.set("event", "FILE");
      out.set("data", ev);
      msg = out.dump() + "\n";
    }
    send_to(c, msg);
  }
}

}  // namespace dsvmi::daemon_internal

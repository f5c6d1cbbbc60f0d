// attach: arguments, the QMP steps in order (qemu_ops.cc), then the crawl as
// a child process and the engine once the crawl has said what it found
// (docs/daemon-protocol.md, "What attach does (and undoes)").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "daemon_impl.h"
#include "dsvmi/sandbox.h"
#include "dsvmi/ring_inspect.h"

namespace dsvmi::daemon_internal {

namespace {

Status invalid(std::string desc) { return Status::error("InvalidArgument", std::move(desc)); }

}  // namespace

Status string_list(const Json* j, std::vector<std::string>* out) {
  out->clear();
  if (!j) return Status::ok();
  if (!j->is_array()) return invalid("globs must be an array of strings");
  if (j->as_array().size() > 4096) return invalid("more than 4096 globs");
  for (const auto& g : j->as_array()) {
    if (!g.is_string()) return invalid("globs must be an array of strings");
    Glob tmp;
    if (Status s = Glob::compile(g.as_string(), &tmp); !s) return invalid("glob '" + g.as_string() + "': " + s.message());
    out->push_back(g.as_string());
  }
  return Status::ok();
}

// Policy values arrive as strings (key = value files) or numbers (JSON).
Status scalar(const Json& args, const char* key, std::string def, std::string* out) {
  const Json* v = args.get(key);
  if (!v) {
    *out = std::move(def);
    return Status::ok();
  }
  std::string t;
  if (v->is_string()) t = v->as_string();
  else if (v->is_number()) t = v->dump();
  else return invalid(std::string(key) + " must be a string or a number");
  // Digits, optionally one K/M/G: they end up on a command line.
  size_t d = t.find_first_not_of("0123456789");
  if (t.empty() || d == 0 || (d != std::string::npos && (d + 1 != t.size() || std::string("KMG").find(t[d]) == std::string::npos)))
    return invalid(std::string(key) + ": '" + t + "' is not a number (K/M/G suffix allowed)");
  *out = t;
  return Status::ok();
}

Status write_policy_file(const std::string& path, const std::string& mode, const std::vector<std::string>& globs,
                         const std::string& pending_ttl, const std::string& pending_max, const HashSettings& hash) {
  Json p(Json::Object{});
  p.set("mode", mode);
  p.set("globs", string_array(globs));
  if (!pending_ttl.empty()) p.set("pending_ttl", pending_ttl);
  if (!pending_max.empty()) p.set("pending_max", pending_max);
  hash.write(&p);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << p.dump() << "\n";
    if (!out) return invalid("cannot write the policy file " + tmp);
  }
  share_with_sandbox(tmp, 0640);  // the sandboxed engine re-reads it (docs/security.md)
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return invalid("cannot write the policy file " + path + ": " + std::strerror(errno));
  return Status::ok();
}

Status HashSettings::parse(const Json& args) {
  Status s;
  if (args.get("hash") && !(s = string_list(args.get("hash"), &globs))) return s;
  if (!(s = scalar(args, "hash_max", max, &max)) || !(s = scalar(args, "diff_max", diff_max, &diff_max)) ||
      !(s = scalar(args, "diff_bytes", diff_bytes, &diff_bytes)))
    return s;
  return Status::ok();
}

void HashSettings::write(Json* p) const {
  if (!globs.empty()) p->set("hash", string_array(globs));
  if (!max.empty()) p->set("hash_max", max);
  if (!diff_max.empty()) p->set("diff_max", diff_max);
  if (!diff_bytes.empty()) p->set("diff_bytes", diff_bytes);
}

namespace {

// The arguments of attach into a fresh Attachment (nothing touched yet).
Status parse_attach_args(const Json& args, Attachment* a, std::string* ring_size, std::string* read_via) {
  Status s;
  if (!(s = scalar(args, "pending_ttl", "", &a->pending_ttl)) || !(s = scalar(args, "pending_max", "", &a->pending_max)) ||
      !(s = scalar(args, "ring_size", "64M", ring_size)) || !(s = string_list(args.get("globs"), &a->globs)) ||
      !(s = a->hash.parse(args)))
    return s;
  a->qmp = args.get_string("qmp");
  a->node = args.get_string("node");
  a->mode = args.get_string("mode", "low-overhead");
  if (a->qmp.empty() || a->node.empty()) return invalid("attach needs 'qmp' and 'node'");
  if (a->mode != "low-overhead" && a->mode != "full")
    return invalid("mode must be low-overhead or full, not '" + a->mode + "'");
  *read_via = args.get_string("read", "auto");
  if (*read_via != "auto" && *read_via != "file" && *read_via != "nbd")
    return invalid("read must be auto, file or nbd, not '" + *read_via + "'");
  a->name = args.get_string("name", "localhost:" + a->node + ":" + a->node);
  if (a->name.size() > 256 || a->name.find_first_of("\n\"\\") != std::string::npos)
    return invalid("name must be at most 256 characters without quotes, backslashes or newlines");
  return Status::ok();
}

}  // namespace

Status Daemon::make_ring_and_gate(Attachment& a, const std::string& ring_size) {
  std::string out;
  if (run_capture({opt_.self_exe, "ring-create", a.ring, "--size", ring_size}, &out) != 0)
    return Status::error("RingFailed", last_line(out));
  // Pass-all while the crawl runs: nothing the guest writes meanwhile is missed.
  out.clear();
  if (run_capture({opt_.self_exe, "gate-create", a.gate, "--disk-size", std::to_string(a.disk_size), "--mode", "pass-all"},
                  &out) != 0)
    return Status::error("GateFailed", last_line(out));
  return write_policy_file(a.policy_file, a.mode, a.globs, a.pending_ttl, a.pending_max, a.hash);
}

Reply Daemon::attach(const Json& args, Client* c) {
  Attachment a;
  std::string ring_size, read_via;
  if (Status s = parse_attach_args(args, &a, &ring_size, &read_via); !s) return Reply::fail(s);
  if (auto it = atts_.find(a.name); it != atts_.end())
    return Reply::fail(Status::error("AlreadyAttached", "'" + a.name + "' is already attached" +
                                                            (it->second.state == State::Crawling ? " (its crawl is running)" : "") +
                                                            " (dsvmi detach it first)"));
  for (auto& [n, o] : atts_)
    if (o.qmp == a.qmp && o.node == a.node)
      return Reply::fail(Status::error("AlreadyAttached", "node '" + a.node + "' of " + a.qmp + " is already attached as '" + n + "'"));

  QmpClient q;
  if (Status s = q.connect(a.qmp); !s)
    return Reply::fail(Status::error("QmpUnreachable", "QMP socket " + a.qmp + ": " + s.message() +
                                                           " (start QEMU with -qmp unix:PATH,server=on,wait=off and pass that PATH)"));
  bool via_nbd = false;
  std::string drv;
  if (Status s = probe_node(q, a, read_via, &via_nbd, &drv); !s) return Reply::fail(s);

  std::string id = std::to_string(::getpid()) + "-" + std::to_string(++next_id_);
  // The daemon's pid in the name: after a crash of this daemon, the next one
  // knows the filter is stale (remove_stale_filter).
  a.filter_node = "dsvmi-" + id;
  a.ring = opt_.state_dir + "/ring-" + id;
  a.gate = opt_.state_dir + "/gate-" + id;
  a.index = opt_.state_dir + "/index-" + id;
  a.log = opt_.state_dir + "/engine-" + id + ".log";
  a.policy_file = opt_.state_dir + "/policy-" + id + ".json";
  a.disk = a.image;
  // Each step undoes what the ones before it did when it fails, in reverse.
  auto rollback = [&](const Status& why) {
    std::vector<std::string> ignored;
    remove_export(a, &ignored, &q);
    remove_files(a);
    return Reply::fail(why);
  };
  if (via_nbd)
    if (Status s = export_over_nbd(q, a, drv); !s) return rollback(s);
  if (Status s = make_ring_and_gate(a, ring_size); !s) return rollback(s);
  if (Status s = insert_filter(q, a); !s) return rollback(s);
  // From here every guest write is in the ring. The crawl runs as a child
  // process the loop reads; the client gets its reply when the engine runs.
  a.attached_at = now_s();
  a.state = State::Crawling;
  a.attach_client = c ? c->id : 0;
  if (Status s = start_crawl(a); !s) {
    std::vector<std::string> ignored;
    unplug_filter(a, &ignored, &q);
    return rollback(s);
  }
  std::string name = a.name;
  atts_.emplace(name, std::move(a));
  return Reply::later();
}

Status Daemon::start_crawl(Attachment& a) {
  // The crawl reads the disk while the guest writes it; every write since
  // the filter went in is in the ring (gate pass-all) and the engine replays
  // them after the crawl before emitting events for them.
  std::vector<std::string> crawl = {opt_.self_exe, "crawl", a.disk, "--index", a.index, "--json"};
  if (a.mode == "low-overhead") {
    // Publishes the policy's grains (metadata + watched files' data) into the
    // gate, replacing pass-all; the engine keeps it in step from then on.
    // Hashed files are watched (their writes must pass): their globs too.
    const bool none = a.globs.empty() && a.hash.globs.empty();
    crawl.insert(crawl.end(), {"--gate", a.gate, "--policy", none ? "metadata" : "glob"});
    for (const auto& g : a.globs) crawl.insert(crawl.end(), {"--glob", g});
    for (const auto& g : a.hash.globs) crawl.insert(crawl.end(), {"--glob", g});
  }
  // Its records (docs/cli-json.md) on the pipe; its stderr to the log.
  int log = ::open(a.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  Status s = a.crawl.child.start(crawl, log);
  if (log >= 0) ::close(log);
  if (!s) return Status::error("CrawlFailed", "cannot start the crawl: " + s.message());
  a.crawl.started = now_s();
  return Status::ok();
}

// One line of `dsvmi crawl --json` (docs/cli-json.md); anything else is
// ignored (the crawl's own messages go to the log, not to this pipe).
void Daemon::on_crawl_record(Attachment& a, const std::string& line) {
  Json rec;
  if (!Json::parse(line, &rec) || !rec.is_object()) return;
  std::string kind = rec.get_string("crawl");
  if (kind == "progress") {
    a.crawl.file_system = unsigned(std::min<uint64_t>(rec.get_uint64("file_system"), 1u << 20));
    a.crawl.fraction = std::clamp(rec.get_number("fraction"), 0.0, 1.0);
  } else if (kind == "summary") {
    a.crawl.summary = rec;
  } else if (kind == "gate") {
    a.crawl.gate = rec;
  } else if (kind == "error") {
    a.crawl.error = rec.get_string("error", "no reason given");
  }
}

void Daemon::crawl_finished(Attachment& a) {
  CrawlJob& cr = a.crawl;
  cr.seconds = now_s() - cr.started;
  if (cr.child.exit_code() != 0 || !cr.summary.is_object()) {
    std::string why = !cr.error.empty()           ? cr.error
                      : cr.child.exit_code() != 0 ? "exited with " + cr.child.exit_text() + ": " + last_log_line(a.log)
                                                  : "no summary record";
    return fail_attach(a, Status::error("CrawlFailed", "crawl of " + a.disk + " failed: " + why +
                                                           " (ext2/3/4 and FAT12/16/32, on MBR/GPT or bare, are followed live)"));
  }
  const Json* fss = cr.summary.get("file_systems");
  if (!fss || !fss->is_array() || fss->as_array().empty()) {
    std::string skipped;
    if (const Json* sk = cr.summary.get("skipped"); sk && sk->is_array())
      for (const auto& x : sk->as_array())
        if (x.is_string()) skipped += ", skipped " + x.as_string();
    return fail_attach(a, Status::error("UnsupportedFileSystem",
                                        "no supported file system on " + a.image + " (" +
                                            (skipped.empty() ? "nothing recognised" : skipped.substr(2)) +
                                            "); dsvmi watches ext2/3/4 and FAT12/16/32"));
  }
  // NTFS volumes are crawled but not yet followed live (docs/ntfs.md): a
  // disk with nothing else is refused here, before the engine would refuse it.
  std::string crawled;
  bool followed = false;
  for (const auto& fs : fss->as_array()) {
    const std::string type = fs.is_object() ? fs.get_string("type") : "";
    crawled += " " + (type.empty() ? std::string("unknown") : type);
    followed = followed || type == "ext2" || type == "ext3" || type == "ext4" || type == "vfat";
  }
  if (!followed)
    return fail_attach(a, Status::error("UnsupportedFileSystem",
                                        "no supported file system on " + a.image + " (crawled:" + crawled +
                                            ", which dsvmi does not follow live yet); dsvmi watches ext2/3/4 and FAT12/16/32"));
  // The frames written up to the end of the crawl are replayed against a
  // model they may predate; the engine replays until the producer index
  // read now (--replay-until) and brackets that replay with its ready
  // records (phase replaying -> live), in stream order; events between them
  // are withheld (docs/daemon-protocol.md).
  a.engine.catching_up = false;
  RingSnapshot ring;
  std::string err;
  a.replay_until.clear();
  if (InspectRing(a.ring, &ring, &err) && ring.geometry_ok && ring.indices_ok)
    a.replay_until = std::to_string(ring.producer_index);
  if (Status s = start_engine(a); !s) return fail_attach(a, s);
  a.state = State::Starting;
}

// An attach that failed after the filter went in: undo all of it, tell the
// client, forget the attachment (at the next safe point).
void Daemon::fail_attach(Attachment& a, const Status& why) {
  a.crawl.child.kill();
  std::vector<std::string> problems;
  unplug_filter(a, &problems);
  a.engine.child.kill();  // a failed attach has no events to drain: no wait
  remove_export(a, &problems);
  remove_files(a);
  std::fprintf(stderr, "dsvmi daemon: attach of %s failed: %s\n", a.name.c_str(), why.message().c_str());
  std::string d = why.message();
  if (!problems.empty()) {
    d += " (rollback:";
    for (auto& p : problems) d += " " + p + ";";
    d.back() = ')';
  }
  if (a.attach_client) reply(a.attach_client, make_error(why.error_class(), d));
  a.attach_client = 0;
  a.state = State::Detaching;
  a.detach_client = 0;
  a.kill_at = -1;  // erase me
}

Status Daemon::start_engine(Attachment& a) {
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
  Status s = a.engine.child.start(argv, log);
  if (log >= 0) ::close(log);
  if (!s) return Status::error("EngineFailed", "cannot start the engine: " + s.message());
  a.engine.started = a.engine.rate_t = now_s();
  a.engine.rate_events = a.engine.events;
  return Status::ok();
}

}  // namespace dsvmi::daemon_internal

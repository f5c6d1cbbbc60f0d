// dsvmi watch 'HOST:VM:/path/**': file events as they happen, from the local
// daemon's socket or, with --nats, from the JetStream stream every daemon
// publishes to (docs/stream.md). JSON Lines when stdout is not a terminal;
// aligned, coloured columns when it is.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "../daemon/line_socket.h"
#include "commands.h"
#include "daemon_client.h"
#include "dsvmi/glob.h"
#include "dsvmi/known_hashes.h"
#include "dsvmi/stream_subscriber.h"
#include "usage.h"

namespace dsvmi::cli {

namespace {

volatile sig_atomic_t g_watch_stop = 0;
void on_watch_stop(int) { g_watch_stop = 1; }

// How events are shown: JSON Lines, or columns on a terminal.
struct View {
  bool tty = false;
  bool diff = false;                  // --diff: a terminal shows a hash event's diff / ranges
  const KnownHashes* known = nullptr;  // --known
};

// A hash event's diff (coloured) or written byte ranges, under its line.
void print_change(const Json& ev) {
  if (const std::string d = ev.get_string("diff"); !d.empty()) {
    size_t at = 0;
    while (at < d.size()) {
      size_t nl = d.find('\n', at);
      std::string l = d.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
      at = nl == std::string::npos ? d.size() : nl + 1;
      const char* c = l.rfind("+++", 0) == 0 || l.rfind("---", 0) == 0 ? "\033[1m"
                      : !l.empty() && l[0] == '+'                      ? "\033[32m"
                      : !l.empty() && l[0] == '-'                      ? "\033[31m"
                      : l.rfind("@@", 0) == 0                          ? "\033[36m"
                                                                       : "";
      std::printf("    %s%s\033[0m\n", c, l.c_str());
    }
    if (const Json* t = ev.get("diff_truncated"); t && t->is_bool() && t->as_bool()) std::printf("    (diff cut)\n");
  } else if (const Json* r = ev.get("changed_ranges"); r && r->is_array()) {
    std::string l = "    bytes written:";
    for (const Json& x : r->as_array()) {
      if (!x.is_array() || x.as_array().size() != 2) continue;
      const uint64_t off = uint64_t(x.as_array()[0].as_number()), len = uint64_t(x.as_array()[1].as_number());
      l += " [" + std::to_string(off) + ", " + std::to_string(off + len) + ")";
    }
    std::printf("%s\n", l.c_str());
  }
}

// --known: a hash event's digest checked against the allow-list; the JSON
// gets "known" (and "known_as", the list's name for it).
void print_event(const Json& in, const View& view) {
  const bool tty = view.tty;
  const KnownHashes* known = view.known;
  Json ev = in;
  bool unknown = false;
  if (known != nullptr && ev.get_string("event") == "hash" && !ev.get_string("sha256").empty()) {
    const std::string* name = known->find(ev.get_string("sha256"));
    ev.set("known", name != nullptr);
    if (name != nullptr) ev.set("known_as", *name);
    unknown = name == nullptr;
  }
  if (!tty) {
    std::printf("%s\n", ev.dump().c_str());
  } else {
    std::string type = ev.get_string("event", "?");
    const char* colour = type == "create" ? "\033[32m" : type == "delete" ? "\033[31m"
                         : type == "rename" ? "\033[33m" : "\033[36m";
    std::string path = ev.get_string("path");
    if (const Json* from = ev.get("old_path"); from && from->is_string()) path = from->as_string() + " -> " + path;
    if (type == "hash") {
      std::string skipped = ev.get_string("hash_skipped");
      path += skipped.empty() ? "  sha256 " + ev.get_string("sha256") : "  (not hashed: " + skipped + ")";
      if (unknown) path += "  \033[31mNOT IN THE KNOWN LIST\033[0m";
    }
    std::printf("%-24s %s%-8s\033[0m %s\n", ev.get_string("disk").c_str(), colour, type.c_str(), path.c_str());
    if (view.diff && type == "hash") print_change(ev);
  }
  std::fflush(stdout);
}

const char kUsage[] =
    "usage: dsvmi watch 'HOST:VM:/PATH-GLOB' [--socket DAEMON]\n"
    "       dsvmi watch --nats URL[,URL...] 'HOST:VM:/PATH-GLOB' [--durable NAME] [--from-start]\n"
    "                   [--nats-creds FILE] [--nats-stream NAME] [--max-events N]\n"
    "       either form: [--known FILE] [--diff]\n"
    "Streams the file events of every attached disk whose name matches HOST:VM\n"
    "and whose path matches the glob: JSON Lines when stdout is not a terminal.\n"
    "With --nats, from the JetStream stream the daemons publish to (docs/stream.md): --durable keeps\n"
    "the position on the server (a restarted watch resumes after the last event it printed),\n"
    "--from-start begins a new consumer at the stream's first event.\n"
    "--known: a list of good SHA-256 digests (sha256sum output); each hash event\n"
    "(docs/hashes.md) gets \"known\": true/false, and a terminal flags the unknown ones.\n"
    "--diff: a terminal shows each hash event's diff (text files) or written byte ranges\n"
    "(JSON Lines always carry them: \"diff\", \"changed_ranges\").\n";

int watch_nats(const std::string& pattern, stream::SubscriberOptions so, uint64_t max_events, View view) {
  size_t slash = pattern.find(":/");
  size_t colon = pattern.find(':');
  if (slash == std::string::npos || colon == slash) {
    std::fprintf(stderr, "dsvmi watch: pattern must be HOST:VM:/PATH-GLOB, e.g. 'h1:vm1:/var/log/**'\n");
    return 2;
  }
  so.host_glob = pattern.substr(0, colon);
  so.vm_glob = pattern.substr(colon + 1, slash - colon - 1);
  Glob hv, path;
  if (Status s = Glob::compile(pattern.substr(0, slash), &hv); !s) {
    std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
    return 2;
  }
  if (Status s = Glob::compile(pattern.substr(slash + 1), &path); !s) {
    std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
    return 2;
  }
  std::unique_ptr<stream::Subscriber> sub;
  if (Status s = stream::Subscriber::open(so, &sub); !s) {
    std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
    return 1;
  }
  struct sigaction sa = {};
  sa.sa_handler = on_watch_stop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  uint64_t printed = 0, malformed_seen = 0;
  Status s;
  while (!g_watch_stop && (max_events == 0 || printed < max_events)) {
    int room = max_events ? int(std::min<uint64_t>(max_events - printed, 4096)) : 4096;
    s = sub->poll(500, room, [&](const Json& ev) {
      // The subject filter did the literal parts; globs like web* are ours.
      if (!hv.matches(ev.get_string("host") + ":" + ev.get_string("vm"))) return;
      std::string p = ev.get_string("path");
      if (!p.empty() && !path.matches(p)) return;  // path-less records (overflow, stream_lost) always pass
      print_event(ev, view);
      ++printed;
    });
    if (!s) break;
    if (sub->stats().malformed != malformed_seen) {
      malformed_seen = sub->stats().malformed;
      std::fprintf(stderr, "dsvmi watch: skipped a malformed message (%llu so far): %s\n",
                   (unsigned long long)malformed_seen, sub->stats().last_malformed.c_str());
    }
  }
  if (!s) {
    std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int cmd_watch(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  stream::SubscriberOptions so;
  uint64_t max_events = 0;
  std::string pattern, known_path;
  View view;
  bool bad = wants_help(argc, argv);
  for (int i = 0; i < argc && !bad; ++i) {
    std::string a = argv[i];
    if (a == "--nats" && i + 1 < argc) so.urls = argv[++i];
    else if (a == "--durable" && i + 1 < argc) so.durable = argv[++i];
    else if (a == "--nats-creds" && i + 1 < argc) so.creds_file = argv[++i];
    else if (a == "--nats-stream" && i + 1 < argc) so.stream = argv[++i];
    else if (a == "--from-start") so.from_start = true;
    else if (a == "--max-events" && i + 1 < argc) max_events = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--known" && i + 1 < argc) known_path = argv[++i];
    else if (a == "--diff") view.diff = true;
    else if (a[0] != '-' && pattern.empty()) pattern = a;
    else bad = true;
  }
  bool nats_only = !so.durable.empty() || so.from_start || !so.creds_file.empty() || max_events;
  if (bad || pattern.empty() || (so.urls.empty() && nats_only))
    return usage_exit(wants_help(argc, argv), kUsage);
  KnownHashes known;
  if (!known_path.empty()) {
    if (Status s = KnownHashes::load(known_path, &known); !s) {
      std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
      return 2;
    }
  }
  view.tty = ::isatty(1);
  if (!known_path.empty()) view.known = &known;
  if (!so.urls.empty()) return watch_nats(pattern, so, max_events, view);
  int fd;
  if (Status s = daemon_internal::connect_unix(socket, &fd); !s) {
    std::fprintf(stderr, "dsvmi watch: %s (is the daemon running?)\n", s.message().c_str());
    return 1;
  }
  Json req(Json::Object{}), args(Json::Object{});
  args.set("pattern", pattern);
  req.set("execute", "watch");
  req.set("arguments", args);
  std::string buf, line;
  Status s = daemon_internal::write_all(fd, req.dump() + "\n");
  if (s) s = daemon_internal::read_line(fd, &buf, &line, 10000);
  Json reply;
  if (s) s = Json::parse(line, &reply);
  if (s && reply.get("error")) s = Status::error(reply.get("error")->get_string("desc"));
  if (!s) {
    std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
    return 1;
  }
  while ((s = daemon_internal::read_line(fd, &buf, &line, -1))) {
    Json msg;
    if (!Json::parse(line, &msg) || !msg.get("data")) continue;
    print_event(*msg.get("data"), view);
  }
  std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
  return 1;
}

}  // namespace dsvmi::cli

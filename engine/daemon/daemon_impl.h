// The daemon's private structure (docs/architecture.md, "The daemon"): one
// Daemon object owns the attachments, the client connections and the metrics
// HTTP connections; its poll loop (loop.cc) calls one handler per ready
// descriptor. An Attachment is a state machine
//   crawling -> starting -> running -> detaching
// whose sub-objects are the crawl job, the engine process, a policy change
// in flight and the latency histogram. The files split the work by
// responsibility:
//   protocol.cc  wire format and client     child.cc   child processes
//   attach.cc    attach, crawl, engine start qemu_ops.cc QMP/NBD steps
//   engine.cc    engine records, policy, detach, watch
//   status.cc    status and Prometheus text http.cc    GET /metrics
//   loop.cc      the poll loop, timers, shutdown
// Errors are Status values with a class (the protocol's error classes);
// nothing throws.
#pragma once
#include <list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "child.h"
#include "dsvmi/daemon.h"
#include "dsvmi/glob.h"
#include "qmp_client.h"

namespace dsvmi::daemon_internal {

double now_s();

// Event latency histogram buckets (seconds), for Prometheus.
constexpr double kLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr size_t kNumBuckets = sizeof kLatencyBuckets / sizeof kLatencyBuckets[0];

constexpr double kEngineStopSeconds = 10;
constexpr double kPolicyTimeout = 15;
constexpr double kEngineReadySeconds = 30;

enum class State { Crawling, Starting, Running, Detaching };
const char* state_name(State s);

// The attach crawl (state Crawling): `dsvmi crawl --json` and what its
// records said (docs/cli-json.md).
struct CrawlJob {
  Child child;
  Json summary;       // the summary record (null until it comes)
  Json gate;          // the gate record: what the gate passes (null in full mode)
  std::string error;  // the error record's message ("" = none)
  double started = 0, seconds = 0, fraction = 0;
  unsigned file_system = 0;
};

// The engine (`dsvmi run`), from state Starting on.
struct EngineProcess {
  Child child;
  double started = 0;
  uint64_t events = 0, restarts = 0, bad_lines = 0;
  Json last_stats;  // its last {"engine": "stats"} record
  // No events until the engine has consumed every frame written up to the
  // end of the crawl (docs/daemon-protocol.md, "What attach does").
  bool catching_up = false;
  uint64_t suppressed = 0;
  double rate_t = 0, events_per_s = 0;
  uint64_t rate_events = 0;
};

// A live policy change the engine has not confirmed yet.
struct PolicyChange {
  uint64_t client = 0;  // the client waiting (0 = none)
  double deadline = 0;  // > 0 while one is in flight
  std::string backup;   // the policy file's previous text, restored if the engine refuses
  std::string pending_ttl, pending_max;  // asked for, in force once the engine confirms
};

// Latency of the events the daemon received ("latency_us" of each event).
struct Latency {
  uint64_t buckets[kNumBuckets] = {};
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds);
};

// Content hashes and diffs of an attachment (docs/hashes.md): the policy
// keys hash, hash_max, diff_max, diff_bytes; "" = the engine's default.
struct HashSettings {
  std::vector<std::string> globs;
  std::string max, diff_max, diff_bytes;
  bool operator==(const HashSettings&) const = default;
  // From request arguments; missing keys keep *out's values.
  Status parse(const Json& args);
  void write(Json* policy) const;
};

struct Attachment {
  std::string name, qmp, node, filter_node, device, image, mode;
  std::string disk;                   // what the crawl and the engine read: the image file or an nbd+unix:// URL
  std::string export_id, nbd_socket;  // block export through QEMU's NBD server ("" = the file is read)
  std::vector<std::string> globs;
  std::string pending_ttl, pending_max;  // engine options ("" = its defaults)
  HashSettings hash;                      // fixed at attach
  uint64_t disk_size = 0;
  std::string ring, gate, index, log, policy_file;
  State state = State::Crawling;
  CrawlJob crawl;
  EngineProcess engine;
  PolicyChange policy;
  Latency latency;
  double attached_at = 0;
  // Deferred replies: the client ids waiting (0 = none).
  uint64_t attach_client = 0, detach_client = 0;
  double detach_started = 0, kill_at = 0;  // kill_at < 0: erase at the next safe point
  std::string replaced_filter;             // a dead daemon's filter removed at attach ("" = none)
  std::string replay_until;                // ring producer index when the crawl ended ("" = unknown)
  std::vector<std::string> detach_problems;
  Json last_policy;  // the engine's last accepted policy record
  int64_t policy_generation = 0;
  uint64_t policy_changes = 0;
  bool erased() const { return kill_at < 0; }
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

// One HTTP/1.x request per connection, bounded in size and time.
struct HttpConn {
  int fd;
  std::string in, out;
  size_t sent = 0;
  bool responding = false;
  double deadline;
};

// QEMU's NBD server of one VM, if dsvmi started it.
struct NbdServer {
  std::string socket;
  bool ours = false;
  int exports = 0;
};

// What a request handler answers: a reply now, or later (deferred).
struct Reply {
  Status status;  // an error (with its class) becomes {"error": ...}
  Json value;     // the "return" value when status is ok
  bool deferred = false;
  static Reply later() {
    Reply r;
    r.deferred = true;
    return r;
  }
  static Reply now(Json v) {
    Reply r;
    r.value = std::move(v);
    return r;
  }
  static Reply fail(Status s) {
    Reply r;
    r.status = std::move(s);
    return r;
  }
};

Json string_array(const std::vector<std::string>& v);
std::string last_line(const std::string& text);
// Request argument checks (attach.cc); errors are InvalidArgument.
Status string_list(const Json* j, std::vector<std::string>* out);
Status scalar(const Json& args, const char* key, std::string def, std::string* out);
// The hash settings are fixed for the engine's life (docs/hashes.md): every
// rewrite carries the attachment's.
Status write_policy_file(const std::string& path, const std::string& mode, const std::vector<std::string>& globs,
                         const std::string& pending_ttl, const std::string& pending_max, const HashSettings& hash);
void flush_client(Client& c);
void send_to(Client& c, const std::string& msg);
// The last line of a (possibly large) log file.
std::string last_log_line(const std::string& path);

class Daemon {
 public:
  explicit Daemon(DaemonOptions o) : opt_(std::move(o)) {}
  int run();

 private:
  // loop.cc
  Status listen(int* unix_fd, int* http_fd);
  void poll_once(int lfd, int hfd);
  void on_client_ready(Client& c, short revents);
  void handle_lines(Client& c);
  Reply dispatch(const std::string& cmd, const Json& args, Client* c);
  void reap();
  void tick();
  void tick_attachment(Attachment& a, double t);
  void reply(uint64_t client, Json r) { replies_.push_back({client, std::move(r)}); }
  void flush_replies();
  void shutdown();
  Status find(const Json& args, Attachment** out);

  // attach.cc
  Reply attach(const Json& args, Client* c);
  Status start_crawl(Attachment& a);
  void on_crawl_record(Attachment& a, const std::string& line);
  void crawl_finished(Attachment& a);
  Status start_engine(Attachment& a);
  void fail_attach(Attachment& a, const Status& why);
  Status make_ring_and_gate(Attachment& a, const std::string& ring_size);

  // qemu_ops.cc (q: an open QMP connection; QEMU serves one client per QMP socket)
  Status probe_node(QmpClient& q, Attachment& a, const std::string& read_via, bool* via_nbd, std::string* drv);
  Status remove_stale_filter(QmpClient& q, const std::string& qmp, const Json& blocks, const std::string& node,
                             std::string* device, std::string* replaced);
  Status export_over_nbd(QmpClient& q, Attachment& a, const std::string& drv);
  Status insert_filter(QmpClient& q, Attachment& a);
  void unplug_filter(Attachment& a, std::vector<std::string>* problems, QmpClient* q = nullptr);
  void remove_export(Attachment& a, std::vector<std::string>* problems, QmpClient* q = nullptr);
  void remove_files(Attachment& a);

  // engine.cc
  Reply detach(const Json& args, Client* c);
  void finish_detach(Attachment& a);
  Reply policy_set(const Json& args, Client* c);
  void policy_answered(Attachment& a, const Json& rec, bool ok);
  void policy_failed(Attachment& a, const std::string& cls, const std::string& desc);
  Reply watch(const Json& args, Client* c);
  void stop_engine_blocking(Attachment& a);
  void read_engine(Attachment& a);
  void on_engine_line(Attachment& a, const std::string& line);
  void on_engine_record(Attachment& a, const Json& rec);
  void engine_gone(Attachment& a);
  void publish(const Attachment& a, Json ev);

  // status.cc, http.cc
  Json status(const std::string& name);
  Json status_of(Attachment& a);
  std::string metrics_text();
  void write_metrics();
  void accept_http(int lfd);
  void serve_http(HttpConn& h, short revents);

  DaemonOptions opt_;
  std::map<std::string, Attachment> atts_;
  std::list<Client> clients_;
  std::list<HttpConn> http_;
  std::vector<std::pair<uint64_t, Json>> replies_;
  std::map<std::string, NbdServer> nbd_;  // by QMP socket path
  uint64_t next_id_ = 0, next_client_ = 0;
};

}  // namespace dsvmi::daemon_internal

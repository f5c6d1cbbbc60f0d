// dsvmi run: the inference engine over a capture trace or a live ring.
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <cstdio>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "gate_args.h"
#include "policy_file.h"
#include "run_sandbox.h"
#include "run_support.h"
#include "usage.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/events.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "dsvmi/ring_consumer.h"
#include "dsvmi/sandbox.h"
#include "dsvmi/trace.h"

namespace dsvmi::cli {
namespace {

// Stop requests (SIGINT/SIGTERM) counted: the first drains, the second
// ends at once. SIGHUP: re-read --policy-file.
volatile sig_atomic_t g_run_stop = 0;
volatile sig_atomic_t g_run_hup = 0;
void on_run_signal(int) {
  if (g_run_stop < 2) g_run_stop = g_run_stop + 1;
}
void on_run_hup(int) { g_run_hup = 1; }

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// The command line of `dsvmi run` (run_usage() says what each means).
struct RunArgs {
  std::string trace_path, ring_path, index_path, disk_path, events_path, gate_path, policy_path, stats_json_path;
  bool state = false, stats = false, records = false;
  double stats_interval = 0;
  bool have_replay_until = false;
  uint64_t replay_until = 0;
  ArgPolicy arg_policy;
  InferenceOptions options;
  bool ttl_given = false, max_given = false, hash_max_given = false, diff_max_given = false, diff_bytes_given = false;
  std::vector<std::string> hash_globs;  // --hash
  bool sandbox = kSandboxByDefault;  // docs/security.md
};

// Returns -1 when the arguments are good, else the exit status (0 for --help).
int parse_run_args(int argc, char** argv, RunArgs* r) {
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (is_help_arg(argv[i])) {
      run_usage(stdout);
      return 0;
    } else if ((a == "--trace" && value(&r->trace_path)) || (a == "--ring" && value(&r->ring_path)) ||
               (a == "--index" && value(&r->index_path)) || (a == "--disk" && value(&r->disk_path)) ||
               (a == "--events" && value(&r->events_path)) || (a == "--gate" && value(&r->gate_path)) ||
               (a == "--policy-file" && value(&r->policy_path)) ||
               (a == "--stats-json" && value(&r->stats_json_path))) {
    } else if (a == "--no-sandbox") {
      r->sandbox = false;
    } else if (a == "--data") {
      r->options.capture_data = true;
    } else if (a == "--state") {
      r->state = true;
    } else if (a == "--stats") {
      r->stats = true;
    } else if (a == "--records") {
      r->records = true;
    } else if (a == "--stats-interval" && value(&v)) {
      char* end = nullptr;
      r->stats_interval = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(r->stats_interval > 0) || r->stats_interval > 86400) {
        std::fprintf(stderr, "dsvmi run: bad --stats-interval '%s' (seconds, > 0)\n", v.c_str());
        return 2;
      }
    } else if (a == "--replay-until" && value(&v)) {
      char* end = nullptr;
      errno = 0;
      r->replay_until = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0) {
        std::fprintf(stderr, "dsvmi run: bad --replay-until '%s' (a ring producer index)\n", v.c_str());
        return 2;
      }
      r->have_replay_until = true;
    } else if (a == "--pending-max" && value(&v)) {
      if (!parse_size(v, &r->options.pending_max_bytes)) {
        std::fprintf(stderr, "dsvmi run: bad size '%s'\n", v.c_str());
        return 2;
      }
      r->max_given = true;
    } else if (a == "--hash" && value(&v)) {
      Glob g;
      if (Status s = Glob::compile(v, &g); !s) {
        std::fprintf(stderr, "dsvmi run: bad --hash glob '%s': %s\n", v.c_str(), s.message().c_str());
        return 2;
      }
      r->hash_globs.push_back(v);
    } else if (a == "--hash-max" && value(&v)) {
      if (!parse_size(v, &r->options.hash_max_bytes)) {
        std::fprintf(stderr, "dsvmi run: bad --hash-max '%s' (bytes, K/M/G suffix allowed)\n", v.c_str());
        return 2;
      }
      r->hash_max_given = true;
    } else if ((a == "--diff-max" || a == "--diff-bytes") && value(&v)) {
      const bool max = a == "--diff-max";
      if (!parse_size(v, max ? &r->options.diff_max_bytes : &r->options.diff_output_bytes)) {
        std::fprintf(stderr, "dsvmi run: bad %s '%s' (bytes, K/M/G suffix allowed)\n", a.c_str(), v.c_str());
        return 2;
      }
      (max ? r->diff_max_given : r->diff_bytes_given) = true;
    } else if (a == "--pending-ttl" && value(&v)) {
      r->options.pending_ttl_ns = std::strtoull(v.c_str(), nullptr, 10) * 1000000000ull;
      r->ttl_given = true;
    } else if (a == "--policy" && value(&v)) {
      r->arg_policy.any = true;
      if (v == "metadata") {
      } else if (v == "pass-all") {
        r->arg_policy.pass_all = true;
      } else if (v.rfind("glob:", 0) == 0) {
        r->arg_policy.globs.push_back(v.substr(5));
      } else {
        std::fprintf(stderr, "dsvmi run: unknown policy '%s'\n", v.c_str());
        return 2;
      }
    } else {
      std::fprintf(stderr, "dsvmi run: bad argument '%s'\n", a.c_str());
      run_usage(stderr);
      return 2;
    }
  }
  if (r->trace_path.empty() == r->ring_path.empty() || r->index_path.empty() || r->disk_path.empty()) {
    run_usage(stderr);
    return 2;
  }
  return -1;
}

// One run of the engine: opened from the arguments, fed from a trace or a
// live ring, finished. Every step returns the exit status it ends with, or
// -1 to go on.
class Run {
 public:
  explicit Run(RunArgs args) : a_(std::move(args)) {}
  ~Run() {
    if (out_ && out_ != stdout) std::fclose(out_);
    if (stats_json_) std::fclose(stats_json_);
  }
  int open();
  void install_signals();
  int start_policy();
  int feed_trace();
  int feed_ring();
  int finish(int rc);

 private:
  int sandbox();
  void reload_policy();
  void stats_record();
  void start_drain();

  RunArgs a_;
  FILE* stats_json_ = nullptr;  // --stats-json, open before the sandbox
  FilePolicy file_policy_;
  std::unique_ptr<Index> index_;
  std::unique_ptr<DiskReader> disk_;
  std::unique_ptr<Gate> gate_;
  FILE* out_ = nullptr;
  std::unique_ptr<JsonlEventSink> sink_;
  std::unique_ptr<InferenceEngine> engine_;
  // Status records (policy/ready/stats) only for callers that asked for
  // records: plain event consumers see events only.
  bool records_ = false;
  // Policy generations: 1 is the policy the engine starts with.
  uint64_t generation_ = 1;
  PolicyApplyResult last_applied_;  // reported again when a change is refused
  bool forced_ = false;
  // The live ring (feed_ring).
  std::unique_ptr<RingConsumer> ring_;
  uint64_t interval_ns_ = 0;
  LatencyHistogram interval_latency_;
  bool draining_ = false;
  uint64_t drain_to_ = 0;
};

int Run::open() {
  Status s;
  InferenceOptions& options = a_.options;
  if (!a_.policy_path.empty()) {
    if (!(s = read_policy_file(a_.policy_path, &file_policy_))) {
      std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
      return 2;
    }
    // Command-line tunables win over the file's.
    if (file_policy_.has_ttl && !a_.ttl_given) options.pending_ttl_ns = file_policy_.ttl_ns;
    if (file_policy_.has_max && !a_.max_given) options.pending_max_bytes = file_policy_.max_bytes;
    if (file_policy_.has_hash_max && !a_.hash_max_given) options.hash_max_bytes = file_policy_.hash_max;
    if (file_policy_.has_diff_max && !a_.diff_max_given) options.diff_max_bytes = file_policy_.diff_max;
    if (file_policy_.has_diff_bytes && !a_.diff_bytes_given) options.diff_output_bytes = file_policy_.diff_bytes;
  }
  options.hash_globs = a_.hash_globs;
  for (const std::string& g : file_policy_.hash_globs)
    if (std::find(options.hash_globs.begin(), options.hash_globs.end(), g) == options.hash_globs.end())
      options.hash_globs.push_back(g);
  if (!options.hash_globs.empty() && !a_.trace_path.empty()) {
    std::fprintf(stderr, "dsvmi run: --hash needs a live ring: a trace replay has no current disk to read (docs/hashes.md)\n");
    return 2;
  }
  options.policy = merge_policy(a_.arg_policy, a_.policy_path.empty() ? nullptr : &file_policy_);
  fold_hash_globs(options.hash_globs, &options.policy);
  if (!(index_ = Index::open(a_.index_path, &s)) || !(disk_ = open_disk(a_.disk_path, {}, &s))) {
    std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
    return 1;
  }
  if (!(s = index_->check_against(*disk_))) {
    // A live disk may already have been written since the crawl; a trace's
    // disk must be the crawled state.
    std::fprintf(stderr, "dsvmi run: %s: %s\n", a_.trace_path.empty() ? "warning" : "error", s.message().c_str());
    if (!a_.trace_path.empty()) return 1;
  }
  if (!a_.gate_path.empty()) {
    if (!(s = Gate::open(a_.gate_path, &gate_))) {
      std::fprintf(stderr, "dsvmi run: gate %s: %s\n", a_.gate_path.c_str(), s.message().c_str());
      return 1;
    }
    options.gate = gate_.get();
  }
  options.disk_name = a_.disk_path;
  options.read_back_new_data = !a_.ring_path.empty();
  options.measure_latency = !a_.ring_path.empty();
  out_ = stdout;
  if (!a_.events_path.empty() && !(out_ = std::fopen(a_.events_path.c_str(), "w"))) {
    std::fprintf(stderr, "dsvmi run: cannot create %s: %s\n", a_.events_path.c_str(), std::strerror(errno));
    return 1;
  }
  // Opened now: the sandbox allows no new files (docs/security.md).
  if (!a_.stats_json_path.empty() && !(stats_json_ = std::fopen(a_.stats_json_path.c_str(), "w"))) {
    std::fprintf(stderr, "dsvmi run: cannot create %s: %s\n", a_.stats_json_path.c_str(), std::strerror(errno));
    return 1;
  }
  sink_ = std::make_unique<JsonlEventSink>(out_);
  if (!(engine_ = InferenceEngine::create(*index_, *disk_, *sink_, options, &s))) {
    std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
    return 1;
  }
  records_ = a_.records || !a_.policy_path.empty() || a_.stats_interval > 0;
  return -1;
}

void Run::install_signals() {
  // SA_RESTART, so a stop request never interrupts a write of events to a
  // pipe half-way (stdio would drop the rest of its buffer).
  struct sigaction sa = {};
  sa.sa_handler = on_run_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (!a_.ring_path.empty()) {
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
  }
  sa.sa_handler = on_run_hup;
  sigaction(SIGHUP, &sa, nullptr);
}

// Generation 1, applied and reported when the policy comes from a file: the
// gate is recomputed from the index so it matches the file even if the
// crawl published another.
int Run::start_policy() {
  if (a_.policy_path.empty()) return -1;
  Status s = engine_->set_policy(a_.options.policy, &last_applied_);
  if (!s) {
    std::fprintf(stderr, "dsvmi run: %s: %s\n", a_.policy_path.c_str(), s.message().c_str());
    return 2;
  }
  policy_record(out_, generation_, s, a_.options.policy, last_applied_);
  return -1;
}

void Run::reload_policy() {
  g_run_hup = 0;
  PolicyApplyResult r;
  Status st;
  FilePolicy fp;
  GatePolicy np = engine_->policy();
  if (a_.policy_path.empty()) {
    st = Status::error("SIGHUP: no --policy-file to re-read");
  } else if ((st = read_policy_file(a_.policy_path, &fp))) {
    np = merge_policy(a_.arg_policy, &fp);
    fold_hash_globs(a_.options.hash_globs, &np);
    if (fp.hash_globs != file_policy_.hash_globs)
      std::fprintf(stderr, "dsvmi run: the policy file's hash globs changed; they apply from the next start\n");
    st = engine_->set_policy(np, &r);
  }
  if (st) {
    ++generation_;
    last_applied_ = r;
    uint64_t ttl = a_.ttl_given || !fp.has_ttl ? a_.options.pending_ttl_ns : fp.ttl_ns;
    uint64_t max = a_.max_given || !fp.has_max ? a_.options.pending_max_bytes : fp.max_bytes;
    engine_->set_pending_limits(ttl, max);
    std::fprintf(stderr, "dsvmi run: policy generation %llu applied: %s, %zu glob(s), gate %llu grains\n",
                 (unsigned long long)generation_, mode_name(np), np.globs.size(), (unsigned long long)r.gate_grains);
  } else {
    // The old policy stays (set_policy changes nothing when it refuses).
    np = engine_->policy();
    r = last_applied_;
    if (gate_) {
      r.gate = true;
      r.gate_pass_all = gate_->mode() == GateMode::kPassAll;
      r.gate_grains = gate_->set_grain_count();
    }
    std::fprintf(stderr, "dsvmi run: policy refused, generation %llu stays: %s\n", (unsigned long long)generation_,
                 st.message().c_str());
  }
  std::fflush(stderr);
  // A plain event consumer (no --records, --policy-file, --stats-interval) gets
  // no record: stderr says why the SIGHUP did nothing.
  if (records_) policy_record(out_, generation_, st, np, r);
}

// Everything the run needs is open: give up the rest (docs/security.md).
int Run::sandbox() {
  if (!a_.sandbox) {
    std::fprintf(stderr, "dsvmi run: sandbox off (%s)\n", kSandboxByDefault ? "--no-sandbox" : "a sanitizer build");
    return -1;
  }
  return enter_command_sandbox("dsvmi run", &a_.policy_path, "") ? -1 : 1;
}

int Run::feed_trace() {
  Status s;
  auto reader = TraceReader::open(a_.trace_path, &s);
  if (!reader) {
    std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
    return 1;
  }
  if (int rc = sandbox(); rc >= 0) return rc;
  std::span<const std::byte> frame;
  while (true) {
    if (g_run_hup) reload_policy();
    TraceReader::Next n = reader->next(&frame, &s);
    if (n == TraceReader::Next::kEnd) return 0;
    if (n == TraceReader::Next::kError || !(s = engine_->feed_bytes(frame))) {
      std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
      return 1;
    }
  }
}

void Run::stats_record() {
  const InferenceStats& es = engine_->stats();
  RingConsumerStats rs = ring_->stats();
  engine_->take_interval_latency(&interval_latency_);
  std::string l = "{\"engine\":\"stats\",\"frames\":" + std::to_string(es.frames) +
                  ",\"events\":" + std::to_string(es.events) + ",\"write_bytes\":" + std::to_string(es.write_bytes) +
                  ",\"lost_records\":" + std::to_string(es.lost_records) + ",\"ring_lag_bytes\":" +
                  std::to_string(rs.producer_index > rs.consumer_index ? rs.producer_index - rs.consumer_index : 0) +
                  ",\"latency_us\":";
  latency_json(interval_latency_, &l);
  l += ",\"latency_us_total\":";
  latency_json(es.latency, &l);
  l += ",\"pending_bytes\":" + std::to_string(es.pending_bytes) + ",\"policy_generation\":" +
       std::to_string(generation_) + "}";
  write_record(out_, l);
}

// After a stop request, drain what the ring holds at that moment (up to the
// producer index read then), then end. A second request ends now.
void Run::start_drain() {
  draining_ = true;
  RingConsumerStats rs = ring_->stats();
  drain_to_ = rs.producer_index;
  std::fprintf(stderr, "dsvmi run: stop requested: draining %llu bytes\n",
               (unsigned long long)(drain_to_ > rs.consumer_index ? drain_to_ - rs.consumer_index : 0));
  std::fflush(stderr);
}

int Run::feed_ring() {
  std::string err;
  struct stat st;
  const bool exists = ::stat(a_.ring_path.c_str(), &st) == 0;
  ring_ = exists ? RingConsumer::Attach(a_.ring_path, &err) : RingConsumer::Create(a_.ring_path, 64ull << 20, &err);
  if (!ring_) {
    std::fprintf(stderr, "dsvmi run: ring %s: %s\n", a_.ring_path.c_str(), err.c_str());
    return 1;
  }
  if (int rc = sandbox(); rc >= 0) return rc;
  std::fprintf(stderr, "dsvmi run: ready ring=%s\n", a_.ring_path.c_str());
  std::fflush(stderr);
  // Post-crawl replay: the frames already in the ring when the engine starts
  // were written during the crawl; "live" once they are consumed. Its end:
  // what the caller says (the producer index it read when the crawl
  // finished), else the producer index now.
  RingConsumerStats rs = ring_->stats();
  const uint64_t catch_up_to = a_.have_replay_until ? a_.replay_until : rs.producer_index;
  bool replaying = catch_up_to > rs.consumer_index;
  if (records_)
    write_record(out_, replaying ? "{\"engine\":\"ready\",\"phase\":\"replaying\",\"catch_up_to\":" +
                                       std::to_string(catch_up_to) + ",\"consumer_index\":" +
                                       std::to_string(rs.consumer_index) + "}"
                                 : "{\"engine\":\"ready\",\"phase\":\"live\",\"frames\":0}");
  interval_ns_ = a_.stats_interval > 0 ? uint64_t(a_.stats_interval * 1e9) : 0;
  uint64_t next_stats = interval_ns_ ? mono_ns() + interval_ns_ : UINT64_MAX;
  constexpr size_t kBurst = 64;
  FrameView views[kBurst];
  int rc = 0;
  while (true) {
    if (g_run_stop >= 2) {
      forced_ = true;
      std::fprintf(stderr, "dsvmi run: second stop request: exiting without draining\n");
      break;
    }
    if (g_run_stop && !draining_) start_drain();
    if (g_run_hup) reload_policy();
    // While replaying, one frame at a time: the "live" record then falls
    // exactly between the last replayed frame's events and the next ones.
    size_t n = ring_->Dequeue(views, replaying ? 1 : kBurst);
    for (size_t i = 0; i < n && rc == 0 && g_run_stop < 2; i++) {
      if (Status s = engine_->feed(views[i]); !s) {
        std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
        rc = 1;
      }
    }
    ring_->ReleaseAll();
    // Live: subscribers read events as they happen, not when a stdio buffer fills.
    if (n > 0) std::fflush(out_);
    if (rc) break;
    if (replaying && (n == 0 || ring_->stats().consumer_index >= catch_up_to)) {
      replaying = false;
      if (records_)
        write_record(out_, "{\"engine\":\"ready\",\"phase\":\"live\",\"frames\":" +
                               std::to_string(engine_->stats().frames) + "}");
    }
    uint64_t now = mono_ns();
    if (now >= next_stats) {
      stats_record();
      next_stats = now + interval_ns_;
    }
    if (draining_ && (n == 0 || ring_->stats().consumer_index >= drain_to_)) break;
    if (n == 0) {
      // A quiet ring: file systems without a journal settle here (idle()).
      const uint64_t due = engine_->idle(now);
      std::fflush(out_);
      int64_t wait = 100 * 1000000;
      if (next_stats != UINT64_MAX) wait = std::min<int64_t>(wait, int64_t(next_stats - std::min(now, next_stats)) + 1000000);
      if (due != UINT64_MAX) wait = std::min<int64_t>(wait, int64_t(due - std::min(now, due)) + 1000000);
      ring_->Wait(wait);
    }
  }
  if (!forced_ && interval_ns_) stats_record();
  if (draining_ && !forced_) std::fprintf(stderr, "dsvmi run: drained\n");
  return rc;
}

int Run::finish(int rc) {
  if (Status s = engine_->finish(); !s) {
    std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
    rc = rc ? rc : 1;
  }
  if (a_.state && !forced_) {
    std::string tree;
    engine_->dump_state(&tree);
    if (out_ == stdout) std::fflush(stdout);
    std::fwrite(tree.data(), 1, tree.size(), stdout);
  }
  if (a_.stats) print_stats(engine_->stats());
  if (!a_.stats_json_path.empty()) {
    Status s = write_stats_json(stats_json_, a_.stats_json_path, engine_->stats());
    stats_json_ = nullptr;
    if (!s) {
      std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
      rc = rc ? rc : 1;
    }
  }
  std::fflush(out_);
  return rc;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  RunArgs args;
  if (int rc = parse_run_args(argc, argv, &args); rc >= 0) return rc;
  const bool from_trace = !args.trace_path.empty();
  if (args.sandbox) close_inherited_fds();
  Run run(std::move(args));
  if (int rc = run.open(); rc >= 0) return rc;
  run.install_signals();
  if (int rc = run.start_policy(); rc >= 0) return rc;
  int rc = from_trace ? run.feed_trace() : run.feed_ring();
  return run.finish(rc);
}

}  // namespace dsvmi::cli

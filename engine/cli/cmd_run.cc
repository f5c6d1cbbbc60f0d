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
#include "dsvmi/disk_reader.h"
#include "dsvmi/events.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "dsvmi/ring_consumer.h"
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

// The policy: --policy arguments (fixed for the run) merged with
// --policy-file (re-read on SIGHUP): globs are the union; full mode (or
// --policy pass-all) watches every file and opens the gate.
struct ArgPolicy {
  bool any = false, pass_all = false;
  std::vector<std::string> globs;
};
struct FilePolicy {
  std::string mode = "low-overhead";
  std::vector<std::string> globs;
  bool has_ttl = false, has_max = false;
  uint64_t ttl_ns = 0, max_bytes = 0;
};

Status read_policy_file(const std::string& path, FilePolicy* out) {
  Json j;
  Status s = load_policy_file(path, &j);
  if (!s) return s;
  FilePolicy p;
  if (const Json* m = j.get("mode")) p.mode = m->as_string();
  if (const Json* g = j.get("globs"))
    for (const Json& x : g->as_array()) p.globs.push_back(x.as_string());
  auto text = [](const Json* v) { return v->is_number() ? Json(v->as_number()).dump() : v->as_string(); };
  if (const Json* v = j.get("pending_ttl")) {
    uint64_t secs = 0;
    if (!parse_size(text(v), &secs) || secs > UINT64_MAX / 1000000000ull)
      return Status::error(path + ": pending_ttl out of range");
    p.has_ttl = true;
    p.ttl_ns = secs * 1000000000ull;
  }
  if (const Json* v = j.get("pending_max")) {
    if (!parse_size(text(v), &p.max_bytes)) return Status::error(path + ": pending_max out of range");
    p.has_max = true;
  }
  *out = std::move(p);
  return Status::ok();
}

GatePolicy merge_policy(const ArgPolicy& args, const FilePolicy* file) {
  GatePolicy p;
  if (file == nullptr) {
    if (!args.any) return GatePolicy{GatePolicyKind::PassAll, {}};
    p.globs = args.globs;
    p.kind = args.pass_all ? GatePolicyKind::PassAll
             : p.globs.empty() ? GatePolicyKind::MetadataOnly
                               : GatePolicyKind::MetadataAndGlobs;
    return p;
  }
  p.globs = file->globs;
  for (const std::string& g : args.globs)
    if (std::find(p.globs.begin(), p.globs.end(), g) == p.globs.end()) p.globs.push_back(g);
  if (file->mode == "full" || args.pass_all) {
    p.kind = GatePolicyKind::PassAll;
  } else {
    p.kind = p.globs.empty() ? GatePolicyKind::MetadataOnly : GatePolicyKind::MetadataAndGlobs;
  }
  return p;
}

const char* mode_name(const GatePolicy& p) { return p.kind == GatePolicyKind::PassAll ? "full" : "low-overhead"; }

// Engine status records (docs/events.md, "Engine records"): one JSON object
// per line on the event stream, key "engine", never "event".
void write_record(FILE* out, const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), out);
  std::fputc('\n', out);
  std::fflush(out);
}

void policy_record(FILE* out, uint64_t generation, const Status& s, const GatePolicy& p, const PolicyApplyResult& r) {
  std::string l = "{\"engine\":\"policy\",\"generation\":" + std::to_string(generation) +
                  ",\"ok\":" + (s ? "true" : "false") + ",\"error\":";
  json_string(s ? std::string() : s.message(), &l);
  l += ",\"mode\":\"" + std::string(mode_name(p)) + "\",\"globs\":[";
  for (size_t i = 0; i < p.globs.size(); i++) {
    if (i) l += ",";
    json_string(p.globs[i], &l);
  }
  l += "],\"gate_grains\":" + std::to_string(r.gate_grains) + ",\"gate_mode\":\"" +
       (!r.gate ? "none" : r.gate_pass_all ? "pass-all" : "set") + "\",\"watched_files\":" +
       std::to_string(r.watched_files) + ",\"gate_data_blocks\":" + std::to_string(r.data_blocks) +
       ",\"gate_metadata_blocks\":" + std::to_string(r.metadata_blocks) + "}";
  write_record(out, l);
}

void latency_json(const LatencyHistogram& h, std::string* l) {
  *l += "{\"p50\":" + std::to_string(h.percentile(0.50)) + ",\"p99\":" + std::to_string(h.percentile(0.99)) +
        ",\"max\":" + std::to_string(h.max()) + ",\"count\":" + std::to_string(h.count()) + "}";
}

void run_usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi run (--trace TRACE | --ring PATH) --index INDEX --disk IMAGE\n"
               "                 [--policy metadata|pass-all|glob:PATTERN]... [--gate GATE]\n"
               "                 [--events FILE] [--data] [--state] [--stats] [--pending-ttl SECONDS]\n"
               "                 [--pending-max BYTES] [--policy-file FILE] [--stats-interval SECONDS]\n"
               "Infers file-level events from the frames of a capture trace (or a live ring,\n"
               "until SIGINT/SIGTERM: what the ring holds then is drained first; a second\n"
               "signal ends at once) and writes them as JSON Lines (docs/events.md) to stdout\n"
               "or FILE. INDEX is a crawl of IMAGE as it was when the first frame was written;\n"
               "IMAGE is read for blocks the engine has not seen written.\n"
               "  --policy   which files are watched (modify events; gate data in low-overhead\n"
               "             mode): metadata (none), pass-all (every file, default), glob:PATTERN\n"
               "             (repeatable, e.g. glob:/var/log/**)\n"
               "  --policy-file  a policy file (docs/policy.md: mode, globs, pending_ttl,\n"
               "             pending_max), merged with --policy; re-read on SIGHUP and applied\n"
               "             live (watched files, gate recomputed); a {\"engine\":\"policy\",...}\n"
               "             record reports each attempt (docs/events.md, \"Engine records\")\n"
               "  --stats-interval  live ring: a {\"engine\":\"stats\",...} record every SECONDS\n"
               "  --replay-until  live ring: the producer index where the post-crawl replay\n"
               "             ends (default: the producer index at start); the ready records\n"
               "             mark it\n"
               "  --gate     keep this gate file (dsvmi gate-create) in step with the file system\n"
               "  --data     put the written bytes (base64) into modify events\n"
               "  --state    at the end, print the engine's tree (one JSON object per path)\n"
               "  --stats    at the end, print the engine's counters to stderr\n"
               "  --pending-max  memory cap of the pending store (data written before the\n"
               "             metadata that owns it; default 32M): a trace replay must hold one\n"
               "             commit interval's new data, a live run reads evicted data back\n");
}

void print_stats(const InferenceStats& s) {
  std::fprintf(stderr,
               "dsvmi run: frames=%llu writes=%llu write_bytes=%llu flushes=%llu lost_records=%llu seq_gaps=%llu "
               "bad_frames=%llu consistency_points=%llu journal_commits=%llu journal_blocks=%llu "
               "journal_read_back=%llu journal_bad=%llu metadata_writes=%llu inodes_decoded=%llu "
               "data_bytes_attributed=%llu data_read_back=%llu pending_bytes=%llu pending_expired=%llu pending_evicted=%llu "
               "shadow_blocks=%llu disk_block_reads=%llu decode_problems=%llu forced_ops=%llu gate_updates=%llu "
               "events=%llu event_latency_p50_us=%llu event_latency_p99_us=%llu event_latency_max_us=%llu event_latency_count=%llu\n",
               (unsigned long long)s.frames, (unsigned long long)s.writes, (unsigned long long)s.write_bytes,
               (unsigned long long)s.flushes, (unsigned long long)s.lost_records, (unsigned long long)s.seq_gaps,
               (unsigned long long)s.bad_frames, (unsigned long long)s.consistency_points,
               (unsigned long long)s.journal_commits, (unsigned long long)s.journal_blocks_applied,
               (unsigned long long)s.journal_blocks_read_back, (unsigned long long)s.journal_bad_blocks,
               (unsigned long long)s.metadata_block_writes, (unsigned long long)s.inodes_decoded,
               (unsigned long long)s.data_bytes_attributed, (unsigned long long)s.data_blocks_read_back, (unsigned long long)s.pending_bytes,
               (unsigned long long)s.pending_expired, (unsigned long long)s.pending_evicted,
               (unsigned long long)s.shadow_blocks, (unsigned long long)s.disk_block_reads,
               (unsigned long long)s.decode_problems, (unsigned long long)s.forced_ops,
               (unsigned long long)s.gate_updates, (unsigned long long)s.events,
               (unsigned long long)s.latency.percentile(0.50), (unsigned long long)s.latency.percentile(0.99),
               (unsigned long long)s.latency.max(), (unsigned long long)s.latency.count());
  if (!s.last_decode_problem.empty()) std::fprintf(stderr, "dsvmi run: last decode problem: %s\n", s.last_decode_problem.c_str());
}

}  // namespace

int cmd_run(int argc, char** argv) {
  std::string trace_path, ring_path, index_path, disk_path, events_path, gate_path, policy_path;
  bool state = false, stats = false;
  double stats_interval = 0;
  bool have_replay_until = false;
  uint64_t replay_until = 0;
  ArgPolicy arg_policy;
  InferenceOptions options;
  bool ttl_given = false, max_given = false;
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      run_usage(stdout);
      return 0;
    } else if (a == "--trace" && value(&trace_path)) {
    } else if (a == "--ring" && value(&ring_path)) {
    } else if (a == "--index" && value(&index_path)) {
    } else if (a == "--disk" && value(&disk_path)) {
    } else if (a == "--events" && value(&events_path)) {
    } else if (a == "--gate" && value(&gate_path)) {
    } else if (a == "--policy-file" && value(&policy_path)) {
    } else if (a == "--data") {
      options.capture_data = true;
    } else if (a == "--state") {
      state = true;
    } else if (a == "--stats") {
      stats = true;
    } else if (a == "--stats-interval" && value(&v)) {
      char* end = nullptr;
      stats_interval = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(stats_interval > 0) || stats_interval > 86400) {
        std::fprintf(stderr, "dsvmi run: bad --stats-interval '%s' (seconds, > 0)\n", v.c_str());
        return 2;
      }
    } else if (a == "--replay-until" && value(&v)) {
      char* end = nullptr;
      errno = 0;
      replay_until = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0) {
        std::fprintf(stderr, "dsvmi run: bad --replay-until '%s' (a ring producer index)\n", v.c_str());
        return 2;
      }
      have_replay_until = true;
    } else if (a == "--pending-max" && value(&v)) {
      if (!parse_size(v, &options.pending_max_bytes)) {
        std::fprintf(stderr, "dsvmi run: bad size '%s'\n", v.c_str());
        return 2;
      }
      max_given = true;
    } else if (a == "--pending-ttl" && value(&v)) {
      options.pending_ttl_ns = std::strtoull(v.c_str(), nullptr, 10) * 1000000000ull;
      ttl_given = true;
    } else if (a == "--policy" && value(&v)) {
      arg_policy.any = true;
      if (v == "metadata") {
      } else if (v == "pass-all") {
        arg_policy.pass_all = true;
      } else if (v.rfind("glob:", 0) == 0) {
        arg_policy.globs.push_back(v.substr(5));
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
  if (trace_path.empty() == ring_path.empty() || index_path.empty() || disk_path.empty()) {
    run_usage(stderr);
    return 2;
  }
  Status s;
  FilePolicy file_policy;
  if (!policy_path.empty()) {
    if (!(s = read_policy_file(policy_path, &file_policy))) {
      std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
      return 2;
    }
    // Command-line tunables win over the file's.
    if (file_policy.has_ttl && !ttl_given) options.pending_ttl_ns = file_policy.ttl_ns;
    if (file_policy.has_max && !max_given) options.pending_max_bytes = file_policy.max_bytes;
  }
  options.policy = merge_policy(arg_policy, policy_path.empty() ? nullptr : &file_policy);
  auto index = Index::open(index_path, &s);
  if (!index) {
    std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
    return 1;
  }
  auto disk = open_disk(disk_path, {}, &s);
  if (!disk) {
    std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
    return 1;
  }
  if (!(s = index->check_against(*disk))) {
    // A live disk may already have been written since the crawl; a trace's
    // disk must be the crawled state.
    std::fprintf(stderr, "dsvmi run: %s: %s\n", trace_path.empty() ? "warning" : "error", s.message().c_str());
    if (!trace_path.empty()) return 1;
  }
  std::unique_ptr<Gate> gate;
  if (!gate_path.empty()) {
    if (!(s = Gate::open(gate_path, &gate))) {
      std::fprintf(stderr, "dsvmi run: gate %s: %s\n", gate_path.c_str(), s.message().c_str());
      return 1;
    }
    options.gate = gate.get();
  }
  options.disk_name = disk_path;
  options.read_back_new_data = !ring_path.empty();
  options.measure_latency = !ring_path.empty();
  FILE* out = stdout;
  if (!events_path.empty()) {
    out = std::fopen(events_path.c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "dsvmi run: cannot create %s: %s\n", events_path.c_str(), std::strerror(errno));
      return 1;
    }
  }
  JsonlEventSink sink(out);
  auto engine = InferenceEngine::create(*index, *disk, sink, options, &s);
  if (!engine) {
    std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
    return 1;
  }

  // Signals: SA_RESTART, so a stop request never interrupts a write of
  // events to a pipe half-way (stdio would drop the rest of its buffer).
  struct sigaction sa = {};
  sa.sa_handler = on_run_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (!ring_path.empty()) {
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
  }
  sa.sa_handler = on_run_hup;
  sigaction(SIGHUP, &sa, nullptr);

  // Policy generations: 1 is the policy the engine starts with (applied, and
  // reported, when it comes from a file: the gate is recomputed from the
  // index so it matches the file even if the crawl published another).
  // Status records (policy/ready/stats) only for callers that asked for
  // records: plain event consumers see events only.
  const bool records = !policy_path.empty() || stats_interval > 0;
  uint64_t generation = 1;
  PolicyApplyResult last_applied;  // reported again when a change is refused
  if (!policy_path.empty()) {
    PolicyApplyResult& r = last_applied;
    if (!(s = engine->set_policy(options.policy, &r))) {
      std::fprintf(stderr, "dsvmi run: %s: %s\n", policy_path.c_str(), s.message().c_str());
      return 2;
    }
    policy_record(out, generation, s, options.policy, r);
  }
  auto reload_policy = [&]() {
    g_run_hup = 0;
    PolicyApplyResult r;
    Status st;
    FilePolicy fp;
    GatePolicy np = engine->policy();
    if (policy_path.empty()) {
      st = Status::error("SIGHUP: no --policy-file to re-read");
    } else if ((st = read_policy_file(policy_path, &fp))) {
      np = merge_policy(arg_policy, &fp);
      st = engine->set_policy(np, &r);
    }
    if (st) {
      ++generation;
      last_applied = r;
      uint64_t ttl = ttl_given || !fp.has_ttl ? options.pending_ttl_ns : fp.ttl_ns;
      uint64_t max = max_given || !fp.has_max ? options.pending_max_bytes : fp.max_bytes;
      engine->set_pending_limits(ttl, max);
      std::fprintf(stderr, "dsvmi run: policy generation %llu applied: %s, %zu glob(s), gate %llu grains\n",
                   (unsigned long long)generation, mode_name(np), np.globs.size(), (unsigned long long)r.gate_grains);
    } else {
      // The old policy stays (set_policy changes nothing when it refuses).
      np = engine->policy();
      r = last_applied;
      if (gate) {
        r.gate = true;
        r.gate_pass_all = gate->mode() == GateMode::kPassAll;
        r.gate_grains = gate->set_grain_count();
      }
      std::fprintf(stderr, "dsvmi run: policy refused, generation %llu stays: %s\n", (unsigned long long)generation,
                   st.message().c_str());
    }
    std::fflush(stderr);
    // A plain event consumer (no --policy-file, no --stats-interval) gets
    // no record: stderr says why the SIGHUP did nothing.
    if (records) policy_record(out, generation, st, np, r);
  };

  int rc = 0;
  bool forced = false;
  if (!trace_path.empty()) {
    auto reader = TraceReader::open(trace_path, &s);
    if (!reader) {
      std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
      return 1;
    }
    std::span<const std::byte> frame;
    while (true) {
      if (g_run_hup) reload_policy();
      TraceReader::Next n = reader->next(&frame, &s);
      if (n == TraceReader::Next::kEnd) break;
      if (n == TraceReader::Next::kError) {
        std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
        rc = 1;
        break;
      }
      if (!(s = engine->feed_bytes(frame))) {
        std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
        rc = 1;
        break;
      }
    }
  } else {
    std::string err;
    struct stat st;
    const bool exists = ::stat(ring_path.c_str(), &st) == 0;
    auto ring = exists ? RingConsumer::Attach(ring_path, &err) : RingConsumer::Create(ring_path, 64ull << 20, &err);
    if (!ring) {
      std::fprintf(stderr, "dsvmi run: ring %s: %s\n", ring_path.c_str(), err.c_str());
      return 1;
    }
    std::fprintf(stderr, "dsvmi run: ready ring=%s\n", ring_path.c_str());
    std::fflush(stderr);
    // Post-crawl replay: the frames already in the ring when the engine
    // starts were written during the crawl; "live" once they are consumed.
    bool replaying = false;
    uint64_t catch_up_to = 0;
    {
      RingConsumerStats rs = ring->stats();
      // The end of the replay: what the caller says (the producer index it
      // read when the crawl finished), else the producer index now.
      catch_up_to = have_replay_until ? replay_until : rs.producer_index;
      replaying = catch_up_to > rs.consumer_index;
      if (records) {
        write_record(out, replaying ? "{\"engine\":\"ready\",\"phase\":\"replaying\",\"catch_up_to\":" +
                                          std::to_string(catch_up_to) + ",\"consumer_index\":" +
                                          std::to_string(rs.consumer_index) + "}"
                                    : "{\"engine\":\"ready\",\"phase\":\"live\",\"frames\":0}");
      }
    }
    const uint64_t interval_ns = stats_interval > 0 ? uint64_t(stats_interval * 1e9) : 0;
    uint64_t next_stats = interval_ns ? mono_ns() + interval_ns : UINT64_MAX;
    LatencyHistogram interval_latency;
    auto stats_record = [&]() {
      const InferenceStats& es = engine->stats();
      RingConsumerStats rs = ring->stats();
      engine->take_interval_latency(&interval_latency);
      std::string l = "{\"engine\":\"stats\",\"frames\":" + std::to_string(es.frames) +
                      ",\"events\":" + std::to_string(es.events) + ",\"write_bytes\":" + std::to_string(es.write_bytes) +
                      ",\"lost_records\":" + std::to_string(es.lost_records) + ",\"ring_lag_bytes\":" +
                      std::to_string(rs.producer_index > rs.consumer_index ? rs.producer_index - rs.consumer_index : 0) +
                      ",\"latency_us\":";
      latency_json(interval_latency, &l);
      l += ",\"latency_us_total\":";
      latency_json(es.latency, &l);
      l += ",\"pending_bytes\":" + std::to_string(es.pending_bytes) + ",\"policy_generation\":" +
           std::to_string(generation) + "}";
      write_record(out, l);
    };
    constexpr size_t kBurst = 64;
    FrameView views[kBurst];
    // After a stop request, drain what the ring holds at that moment (up to
    // the producer index read then), then end. A second request ends now.
    bool draining = false;
    uint64_t drain_to = 0;
    while (true) {
      if (g_run_stop >= 2) {
        forced = true;
        std::fprintf(stderr, "dsvmi run: second stop request: exiting without draining\n");
        break;
      }
      if (g_run_stop && !draining) {
        draining = true;
        RingConsumerStats rs = ring->stats();
        drain_to = rs.producer_index;
        std::fprintf(stderr, "dsvmi run: stop requested: draining %llu bytes\n",
                     (unsigned long long)(drain_to > rs.consumer_index ? drain_to - rs.consumer_index : 0));
        std::fflush(stderr);
      }
      if (g_run_hup) reload_policy();
      // While replaying, one frame at a time: the "live" record then falls
      // exactly between the last replayed frame's events and the next ones.
      size_t n = ring->Dequeue(views, replaying ? 1 : kBurst);
      for (size_t i = 0; i < n && rc == 0 && g_run_stop < 2; i++) {
        if (!(s = engine->feed(views[i]))) {
          std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
          rc = 1;
        }
      }
      ring->ReleaseAll();
      // Live: subscribers read events as they happen, not when a stdio
      // buffer fills.
      if (n > 0) std::fflush(out);
      if (rc) break;
      if (replaying && (n == 0 || ring->stats().consumer_index >= catch_up_to)) {
        replaying = false;
        if (records)
          write_record(out, "{\"engine\":\"ready\",\"phase\":\"live\",\"frames\":" + std::to_string(engine->stats().frames) + "}");
      }
      uint64_t now = mono_ns();
      if (now >= next_stats) {
        stats_record();
        next_stats = now + interval_ns;
      }
      if (draining && (n == 0 || ring->stats().consumer_index >= drain_to)) break;
      if (n == 0) {
        int64_t wait = 100 * 1000000;
        if (next_stats != UINT64_MAX) wait = std::min<int64_t>(wait, int64_t(next_stats - std::min(now, next_stats)) + 1000000);
        ring->Wait(wait);
      }
    }
    if (!forced && interval_ns) stats_record();
    if (draining && !forced) std::fprintf(stderr, "dsvmi run: drained\n");
  }
  engine->finish();
  if (state && !forced) {
    std::string tree;
    engine->dump_state(&tree);
    if (out == stdout) std::fflush(stdout);
    std::fwrite(tree.data(), 1, tree.size(), stdout);
  }
  if (stats) print_stats(engine->stats());
  std::fflush(out);
  if (out != stdout) std::fclose(out);
  return rc;
}

}  // namespace dsvmi::cli

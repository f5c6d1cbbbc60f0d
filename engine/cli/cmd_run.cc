// dsvmi run: the inference engine over a capture trace or a live ring.
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "commands.h"
#include "gate_args.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/events.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "dsvmi/ring_consumer.h"
#include "dsvmi/trace.h"

namespace dsvmi::cli {
namespace {

volatile sig_atomic_t g_run_stop = 0;
void on_run_signal(int) { g_run_stop = 1; }

void run_usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi run (--trace TRACE | --ring PATH) --index INDEX --disk IMAGE\n"
               "                 [--policy metadata|pass-all|glob:PATTERN]... [--gate GATE]\n"
               "                 [--events FILE] [--data] [--state] [--stats] [--pending-ttl SECONDS]\n"
               "                 [--pending-max BYTES]\n"
               "Infers file-level events from the frames of a capture trace (or a live ring,\n"
               "until SIGINT/SIGTERM) and writes them as JSON Lines (docs/events.md) to stdout\n"
               "or FILE. INDEX is a crawl of IMAGE as it was when the first frame was written;\n"
               "IMAGE is read for blocks the engine has not seen written.\n"
               "  --policy   which files are watched (modify events; gate data in low-overhead\n"
               "             mode): metadata (none), pass-all (every file, default), glob:PATTERN\n"
               "             (repeatable, e.g. glob:/var/log/**)\n"
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
               "events=%llu\n",
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
               (unsigned long long)s.gate_updates, (unsigned long long)s.events);
  if (!s.last_decode_problem.empty()) std::fprintf(stderr, "dsvmi run: last decode problem: %s\n", s.last_decode_problem.c_str());
}

}  // namespace

int cmd_run(int argc, char** argv) {
  std::string trace_path, ring_path, index_path, disk_path, events_path, gate_path;
  bool state = false, stats = false, any_policy = false;
  InferenceOptions options;
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
    } else if (a == "--data") {
      options.capture_data = true;
    } else if (a == "--state") {
      state = true;
    } else if (a == "--stats") {
      stats = true;
    } else if (a == "--pending-max" && value(&v)) {
      if (!parse_size(v, &options.pending_max_bytes)) {
        std::fprintf(stderr, "dsvmi run: bad size '%s'\n", v.c_str());
        return 2;
      }
    } else if (a == "--pending-ttl" && value(&v)) {
      options.pending_ttl_ns = std::strtoull(v.c_str(), nullptr, 10) * 1000000000ull;
    } else if (a == "--policy" && value(&v)) {
      if (!any_policy) options.policy = GatePolicy{};
      any_policy = true;
      if (v == "metadata") {
        options.policy.kind = GatePolicyKind::MetadataOnly;
      } else if (v == "pass-all") {
        options.policy.kind = GatePolicyKind::PassAll;
      } else if (v.rfind("glob:", 0) == 0) {
        options.policy.kind = GatePolicyKind::MetadataAndGlobs;
        options.policy.globs.push_back(v.substr(5));
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
  int rc = 0;
  if (!trace_path.empty()) {
    auto reader = TraceReader::open(trace_path, &s);
    if (!reader) {
      std::fprintf(stderr, "dsvmi run: %s\n", s.message().c_str());
      return 1;
    }
    std::span<const std::byte> frame;
    while (true) {
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
    struct sigaction sa = {};
    sa.sa_handler = on_run_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
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
    constexpr size_t kBurst = 64;
    FrameView views[kBurst];
    // After a stop request, drain what is already enqueued, then end.
    bool draining = false;
    while (true) {
      if (g_run_stop) draining = true;
      size_t n = ring->Dequeue(views, kBurst);
      for (size_t i = 0; i < n && rc == 0; i++) {
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
      if (n == 0) {
        if (draining) break;
        ring->Wait(100 * 1000000);
      }
    }
  }
  engine->finish();
  if (state) {
    std::string tree;
    engine->dump_state(&tree);
    if (out == stdout) std::fflush(stdout);
    std::fwrite(tree.data(), 1, tree.size(), stdout);
  }
  if (stats) print_stats(engine->stats());
  if (out != stdout) std::fclose(out);
  return rc;
}

}  // namespace dsvmi::cli

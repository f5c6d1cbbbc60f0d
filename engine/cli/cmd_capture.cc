// dsvmi capture: drains a ring into a trace file (dsvmi/trace.h) while a guest
// runs. Frames are appended exactly as the ring delivered them (the reader
// verifies them again: the bytes lived in memory a hostile producer shares).
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"
#include "dsvmi/daemon_json.h"
#include "dsvmi/ring_consumer.h"
#include "dsvmi/trace.h"
#include "json_output.h"

namespace dsvmi::cli {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi capture --ring PATH --out TRACE [--capacity BYTES]\n"
               "                     [--until-idle SECONDS | --frames N] [--json]\n"
               "Drains the ring at PATH into the trace file TRACE until SIGINT/SIGTERM, until\n"
               "no frame arrived for SECONDS, or after N frames. Creates the ring (data area\n"
               "of BYTES, a power of two, default 64 MiB; suffixes K, M, G) when PATH does\n"
               "not exist, else re-attaches to it. Prints 'dsvmi capture: ready' on stderr\n"
               "once the ring exists, and a 'capture-stats' line when it stops; with --json,\n"
               "a ready and a stats record on stdout instead (docs/cli-json.md).\n");
}

bool parse_size(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || end == s) return false;
  uint64_t mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1ull << 10, ++end;
  else if (*end == 'M' || *end == 'm') mul = 1ull << 20, ++end;
  else if (*end == 'G' || *end == 'g') mul = 1ull << 30, ++end;
  if (*end) return false;
  *out = v * mul;
  return true;
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

int cmd_capture(int argc, char** argv) {
  const bool json = take_flag(&argc, argv, "--json");
  std::string ring_path, out_path;
  uint64_t capacity = 64ull << 20;
  double until_idle = -1;
  uint64_t max_frames = 0;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "--ring" && (v = value())) {
      ring_path = v;
    } else if (a == "--out" && (v = value())) {
      out_path = v;
    } else if (a == "--capacity" && (v = value())) {
      if (!parse_size(v, &capacity)) {
        std::fprintf(stderr, "dsvmi capture: bad --capacity '%s'\n", v);
        return 2;
      }
    } else if (a == "--until-idle" && (v = value())) {
      char* end = nullptr;
      until_idle = std::strtod(v, &end);
      if (*end || until_idle <= 0) {
        std::fprintf(stderr, "dsvmi capture: bad --until-idle '%s'\n", v);
        return 2;
      }
    } else if (a == "--frames" && (v = value())) {
      if (!parse_size(v, &max_frames) || max_frames == 0) {
        std::fprintf(stderr, "dsvmi capture: bad --frames '%s'\n", v);
        return 2;
      }
    } else {
      std::fprintf(stderr, "dsvmi capture: bad argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (ring_path.empty() || out_path.empty()) {
    usage(stderr);
    return 2;
  }

  // No SA_RESTART: a signal ends the current futex sleep, but Wait() sleeps on
  // until its deadline, so the loop below sees the flag within its 100 ms bound.
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::string err;
  struct stat st;
  const bool exists = ::stat(ring_path.c_str(), &st) == 0;
  auto ring = exists ? RingConsumer::Attach(ring_path, &err)
                     : RingConsumer::Create(ring_path, capacity, &err);
  if (!ring) {
    std::fprintf(stderr, "dsvmi capture: %s ring %s: %s\n", exists ? "cannot attach to" : "cannot create",
                 ring_path.c_str(), err.c_str());
    return 1;
  }
  Status serr;
  auto trace = TraceWriter::create(out_path, &serr);
  if (!trace) {
    std::fprintf(stderr, "dsvmi capture: %s\n", serr.message().c_str());
    return 1;
  }
  if (json) {
    print_record(Json::Object{{"capture", "ready"},
                              {"ring", ring_path},
                              {"attached", exists},
                              {"capacity", uint64_t(ring->geometry().capacity)},
                              {"out", out_path}});
  } else {
    std::fprintf(stderr, "dsvmi capture: ready ring=%s (%s, %llu-byte data area) out=%s\n", ring_path.c_str(),
                 exists ? "attached" : "created", (unsigned long long)ring->geometry().capacity,
                 out_path.c_str());
    std::fflush(stderr);
  }

  constexpr size_t kBurst = 64;
  FrameView views[kBurst];
  uint64_t frames = 0, lost_records = 0, payload_bytes = 0, errors_seen = 0;
  double last_frame = now_s();
  bool dirty = false;
  int rc = 0;
  // On SIGINT/SIGTERM, still drain what the producer had enqueued by then:
  // a stop must not cut off frames the ring already holds. A producer that
  // keeps writing can't hold us: the final drain stops at an empty ring or
  // after one ring's worth of records.
  bool draining = false;
  uint64_t drain_left = 0;
  while (true) {
    if (g_stop && !draining) {
      draining = true;
      drain_left = ring->geometry().capacity / 16 + kBurst;  // records are >= 16 bytes
    }
    size_t want = kBurst;
    if (max_frames && max_frames - frames < want) want = max_frames - frames;
    const size_t n = ring->Dequeue(views, want);
    if (ring->error_count() != errors_seen) {
      errors_seen = ring->error_count();
      std::fprintf(stderr, "dsvmi capture: WARNING: ring record rejected: %s\n", ring->last_error().c_str());
    }
    for (size_t i = 0; i < n; ++i) {
      const FrameView& v = views[i];
      if (Status s = trace->append(std::span(reinterpret_cast<const std::byte*>(v.frame), v.frame_len)); !s) {
        std::fprintf(stderr, "dsvmi capture: %s\n", s.message().c_str());
        rc = 1;
        break;
      }
      frames += 1;
      payload_bytes += v.payload_len;
      if (v.kind == FrameKind::kLost) {
        lost_records += 1;
        std::fprintf(stderr, "dsvmi capture: WARNING: producer lost %llu frames (seq %llu..%llu, %llu bytes)\n",
                     (unsigned long long)v.lost_frames, (unsigned long long)v.first_lost_seq,
                     (unsigned long long)v.seq, (unsigned long long)v.lost_bytes);
      }
    }
    ring->ReleaseAll();
    if (rc) break;
    if (n > 0) {
      dirty = true;
      last_frame = now_s();
      if (max_frames && frames >= max_frames) break;
      if (draining) {
        if (drain_left <= n) break;
        drain_left -= n;
      }
      continue;
    }
    if (draining) break;  // the ring is empty: done
    // Idle: push what we have to the file so a reader (or a crash) sees it.
    if (dirty) {
      if (Status s = trace->flush(); !s) {
        std::fprintf(stderr, "dsvmi capture: %s\n", s.message().c_str());
        rc = 1;
        break;
      }
      dirty = false;
    }
    if (until_idle > 0 && now_s() - last_frame >= until_idle) break;
    ring->Wait(100 * 1000 * 1000);  // 100 ms at most: signals and idle checks stay prompt
  }
  if (Status s = trace->close(); !s) {
    std::fprintf(stderr, "dsvmi capture: %s\n", s.message().c_str());
    rc = 1;
  }
  const RingConsumerStats rs = ring->stats();
  if (json) {
    print_record(Json::Object{{"capture", "stats"},
                              {"ok", rc == 0},
                              {"frames", frames},
                              {"payload_bytes", payload_bytes},
                              {"lost_records", lost_records},
                              {"lost_frames", rs.lost_frames},
                              {"invalid_records", rs.invalid_records},
                              {"producer_dropped_frames", rs.dropped_frames},
                              {"producer_dropped_bytes", rs.dropped_bytes},
                              {"producer_produced_frames", rs.produced_frames}});
    return rc;
  }
  std::fprintf(stderr,
               "capture-stats frames=%llu payload_bytes=%llu lost_records=%llu lost_frames=%llu "
               "invalid_records=%llu producer_dropped_frames=%llu producer_dropped_bytes=%llu "
               "producer_produced_frames=%llu\n",
               (unsigned long long)frames, (unsigned long long)payload_bytes, (unsigned long long)lost_records,
               (unsigned long long)rs.lost_frames, (unsigned long long)rs.invalid_records,
               (unsigned long long)rs.dropped_frames, (unsigned long long)rs.dropped_bytes,
               (unsigned long long)rs.produced_frames);
  return rc;
}

}  // namespace dsvmi::cli

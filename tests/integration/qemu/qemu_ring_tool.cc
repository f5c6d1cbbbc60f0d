// qemu_ring_tool: the engine's side of a ring and a gate, for the QEMU filter
// integration tests and bench/qemu_bench.py. It drives the real consumer
// (dsvmi::RingConsumer) and gate writer (dsvmi::Gate) and prints what it sees
// as JSON lines, so Python tests can compare frames with what they wrote.
//
//   qemu_ring_tool ring-create RING CAPACITY
//   qemu_ring_tool ring-dump RING           one JSON object per frame (payload
//                                           as hex), then {"stats": {...}}
//   qemu_ring_tool ring-drain RING [SECS] [--spin]
//                                           consume and discard until SIGTERM/
//                                           SIGINT (or SECS), then {"stats"};
//                                           --spin polls instead of sleeping on
//                                           the doorbell (isolates its cost)
//   qemu_ring_tool gate-create GATE DISK_SIZE GRAIN MODE [FIRST+COUNT ...]
//   qemu_ring_tool gate-set GATE MODE [FIRST+COUNT ...]   replace the set
//   qemu_ring_tool gate-stat GATE           the reader's counters as JSON
//
// MODE is pass-all, drop-all or set; FIRST+COUNT are grain ranges.
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <time.h>

#include "dsvmi/frame_view.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/ring_consumer.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

const char* kind_name(dsvmi::FrameKind k) {
  switch (k) {
    case dsvmi::FrameKind::kWrite: return "write";
    case dsvmi::FrameKind::kWriteZeroes: return "write_zeroes";
    case dsvmi::FrameKind::kDiscard: return "discard";
    case dsvmi::FrameKind::kFlush: return "flush";
    case dsvmi::FrameKind::kLost: return "lost";
  }
  return "invalid";
}

bool parse_u64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0') return false;
  *out = v;
  return true;
}

void print_stats(const dsvmi::RingConsumer& c) {
  dsvmi::RingConsumerStats s = c.stats();
  std::printf(
      "{\"stats\": {\"delivered_frames\": %llu, \"delivered_bytes\": %llu, \"lost_records\": %llu, "
      "\"lost_frames\": %llu, \"invalid_records\": %llu, \"produced_frames\": %llu, "
      "\"dropped_frames\": %llu, \"dropped_bytes\": %llu, \"producer_lost_records\": %llu, "
      "\"lost_pending_frames\": %llu, \"lost_pending_first_seq\": %llu, "
      "\"lost_pending_offset\": %llu, \"lost_pending_end\": %llu, \"error_count\": %llu}}\n",
      (unsigned long long)s.delivered_frames, (unsigned long long)s.delivered_bytes,
      (unsigned long long)s.lost_records, (unsigned long long)s.lost_frames,
      (unsigned long long)s.invalid_records, (unsigned long long)s.produced_frames,
      (unsigned long long)s.dropped_frames, (unsigned long long)s.dropped_bytes,
      (unsigned long long)s.producer_lost_records, (unsigned long long)s.lost_pending_frames,
      (unsigned long long)s.lost_pending_first_seq, (unsigned long long)s.lost_pending_offset,
      (unsigned long long)s.lost_pending_end, (unsigned long long)c.error_count());
}

int ring_create(int argc, char** argv) {
  uint64_t cap = 0;
  if (argc != 2 || !parse_u64(argv[1], &cap)) {
    std::fprintf(stderr, "usage: ring-create RING CAPACITY\n");
    return 2;
  }
  std::string err;
  auto c = dsvmi::RingConsumer::Create(argv[0], cap, &err);
  if (!c) {
    std::fprintf(stderr, "ring-create: %s\n", err.c_str());
    return 1;
  }
  return 0;
}

int ring_dump(int argc, char** argv) {
  if (argc != 1) {
    std::fprintf(stderr, "usage: ring-dump RING\n");
    return 2;
  }
  std::string err;
  auto c = dsvmi::RingConsumer::Attach(argv[0], &err);
  if (!c) {
    std::fprintf(stderr, "ring-dump: %s\n", err.c_str());
    return 1;
  }
  std::vector<dsvmi::FrameView> views(64);
  std::string hex;
  static const char kHex[] = "0123456789abcdef";
  for (;;) {
    size_t n = c->Dequeue(views.data(), views.size());
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      const dsvmi::FrameView& v = views[i];
      std::printf("{\"seq\": %llu, \"kind\": \"%s\", \"offset\": %llu, \"length\": %llu",
                  (unsigned long long)v.seq, kind_name(v.kind), (unsigned long long)v.offset,
                  (unsigned long long)v.length);
      if (v.kind == dsvmi::FrameKind::kLost) {
        std::printf(", \"lost_frames\": %llu, \"lost_bytes\": %llu, \"first_lost_seq\": %llu",
                    (unsigned long long)v.lost_frames, (unsigned long long)v.lost_bytes,
                    (unsigned long long)v.first_lost_seq);
      }
      if (v.payload != nullptr) {
        hex.resize(v.payload_len * 2);
        for (size_t b = 0; b < v.payload_len; ++b) {
          hex[2 * b] = kHex[v.payload[b] >> 4];
          hex[2 * b + 1] = kHex[v.payload[b] & 15];
        }
        std::printf(", \"payload_hex\": \"%s\"", hex.c_str());
      }
      std::printf("}\n");
    }
    c->ReleaseAll();
  }
  if (c->error_count() != 0) {
    std::fprintf(stderr, "ring-dump: %llu invalid records, last: %s\n",
                 (unsigned long long)c->error_count(), c->last_error().c_str());
  }
  print_stats(*c);
  return 0;
}

int ring_drain(int argc, char** argv) {
  uint64_t secs = 0;
  bool spin = false;
  if (argc >= 2 && std::strcmp(argv[argc - 1], "--spin") == 0) {
    spin = true;
    --argc;
  }
  if (argc < 1 || argc > 2 || (argc == 2 && !parse_u64(argv[1], &secs))) {
    std::fprintf(stderr, "usage: ring-drain RING [SECONDS] [--spin]\n");
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::string err;
  auto c = dsvmi::RingConsumer::Attach(argv[0], &err);
  if (!c) {
    std::fprintf(stderr, "ring-drain: %s\n", err.c_str());
    return 1;
  }
  std::printf("{\"ready\": true}\n");
  std::fflush(stdout);
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  std::vector<dsvmi::FrameView> views(256);
  while (!g_stop) {
    if (secs != 0) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (static_cast<uint64_t>(now.tv_sec - start.tv_sec) >= secs) break;
    }
    size_t n = c->Dequeue(views.data(), views.size());
    if (n == 0) {
      if (!spin) c->Wait(50 * 1000 * 1000);
      continue;
    }
    c->ReleaseAll();
  }
  while (c->Dequeue(views.data(), views.size()) != 0) c->ReleaseAll();
  print_stats(*c);
  return 0;
}

bool parse_mode(const char* s, dsvmi::GateMode* mode) {
  if (!dsvmi::parse_gate_mode(s, mode)) {
    std::fprintf(stderr, "bad gate mode '%s' (pass-all, drop-all, set)\n", s);
    return false;
  }
  return true;
}

bool apply_ranges(dsvmi::Gate* gate, int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    const char* plus = std::strchr(argv[i], '+');
    uint64_t first = 0, count = 0;
    if (plus == nullptr || !parse_u64(std::string(argv[i], static_cast<size_t>(plus - argv[i])).c_str(), &first) ||
        !parse_u64(plus + 1, &count)) {
      std::fprintf(stderr, "bad grain range '%s' (want FIRST+COUNT)\n", argv[i]);
      return false;
    }
    dsvmi::Status s = gate->set_grains({first, count});
    if (!s) {
      std::fprintf(stderr, "gate: %s\n", s.message().c_str());
      return false;
    }
  }
  return true;
}

int gate_create(int argc, char** argv) {
  dsvmi::GateOptions opts;
  uint64_t grain = 0;
  if (argc < 4 || !parse_u64(argv[1], &opts.disk_size) || !parse_u64(argv[2], &grain) ||
      !parse_mode(argv[3], &opts.mode)) {
    std::fprintf(stderr, "usage: gate-create GATE DISK_SIZE GRAIN MODE [FIRST+COUNT ...]\n");
    return 2;
  }
  opts.grain_size = static_cast<uint32_t>(grain);
  std::unique_ptr<dsvmi::Gate> gate;
  dsvmi::Status s = dsvmi::Gate::create(argv[0], opts, &gate);
  if (!s) {
    std::fprintf(stderr, "gate-create: %s\n", s.message().c_str());
    return 1;
  }
  if (!apply_ranges(gate.get(), argc - 4, argv + 4)) return 1;
  s = gate->publish();
  if (!s) {
    std::fprintf(stderr, "gate-create: publish: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

int gate_set(int argc, char** argv) {
  dsvmi::GateMode mode;
  if (argc < 2 || !parse_mode(argv[1], &mode)) {
    std::fprintf(stderr, "usage: gate-set GATE MODE [FIRST+COUNT ...]\n");
    return 2;
  }
  std::unique_ptr<dsvmi::Gate> gate;
  dsvmi::Status s = dsvmi::Gate::open(argv[0], &gate);
  if (!s) {
    std::fprintf(stderr, "gate-set: %s\n", s.message().c_str());
    return 1;
  }
  gate->set_mode(mode);
  s = gate->clear_grains({0, gate->grain_count()});
  if (!s || !apply_ranges(gate.get(), argc - 2, argv + 2)) {
    std::fprintf(stderr, "gate-set: %s\n", s.message().c_str());
    return 1;
  }
  s = gate->publish();
  if (!s) {
    std::fprintf(stderr, "gate-set: publish: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

int gate_stat(int argc, char** argv) {
  if (argc != 1) {
    std::fprintf(stderr, "usage: gate-stat GATE\n");
    return 2;
  }
  std::unique_ptr<dsvmi::Gate> gate;
  dsvmi::Status s = dsvmi::Gate::open(argv[0], &gate);
  if (!s) {
    std::fprintf(stderr, "gate-stat: %s\n", s.message().c_str());
    return 1;
  }
  dsvmi::GateCounters c = gate->reader_counters();
  std::printf(
      "{\"writes_passed\": %llu, \"bytes_passed\": %llu, \"writes_dropped\": %llu, "
      "\"bytes_dropped\": %llu, \"fallbacks\": %llu, \"rejected\": %llu, \"adoptions\": %llu}\n",
      (unsigned long long)c.writes_passed, (unsigned long long)c.bytes_passed,
      (unsigned long long)c.writes_dropped, (unsigned long long)c.bytes_dropped,
      (unsigned long long)c.fallbacks, (unsigned long long)c.rejected,
      (unsigned long long)c.adoptions);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  struct Cmd {
    const char* name;
    int (*fn)(int, char**);
  } cmds[] = {{"ring-create", ring_create}, {"ring-dump", ring_dump},
              {"ring-drain", ring_drain},   {"gate-create", gate_create},
              {"gate-set", gate_set},       {"gate-stat", gate_stat}};
  if (argc >= 2) {
    for (const Cmd& c : cmds) {
      if (std::strcmp(argv[1], c.name) == 0) return c.fn(argc - 2, argv + 2);
    }
  }
  std::fprintf(stderr, "usage: qemu_ring_tool {ring-create|ring-dump|ring-drain|gate-create|"
                       "gate-set|gate-stat} ...\n");
  return 2;
}

// bench_infer: the inference engine replaying a recorded capture trace, no
// QEMU. Reports frames/s and MB/s (and, in the same binary, memcpy of the
// same payload bytes for a ratio), event latency (frame handed to the engine
// -> event emitted) p50/p99 in engine time, and peak RSS.
//
//   build/bench/bench_infer --trace T --index I --disk IMAGE [benchmark flags]
// A trace/index/disk triple comes from the fidelity test:
//   build/tests/integration-work/infer_guest_full/{capture.trace,original.dsvx,original.img}
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dsvmi/frame_generated.h"
#include "dsvmi/inference.h"
#include "dsvmi/trace.h"

namespace {

std::string g_trace, g_index, g_disk;

struct Loaded {
  std::vector<std::vector<uint64_t>> frames;  // 8-aligned copies
  std::vector<size_t> sizes;
  uint64_t payload_bytes = 0;
};

const Loaded& loaded() {
  static Loaded l = [] {
    Loaded x;
    dsvmi::Status s;
    auto r = dsvmi::TraceReader::open(g_trace, &s);
    if (!r) {
      std::fprintf(stderr, "bench_infer: %s\n", s.message().c_str());
      std::exit(2);
    }
    std::span<const std::byte> f;
    while (r->next(&f, &s) == dsvmi::TraceReader::Next::kFrame) {
      std::vector<uint64_t> v((f.size() + 7) / 8);
      std::memcpy(v.data(), f.data(), f.size());
      x.frames.push_back(std::move(v));
      x.sizes.push_back(f.size());
      x.payload_bytes += f.size();
    }
    return x;
  }();
  return l;
}

// Records when each event was emitted relative to the current frame's arrival.
class LatencySink : public dsvmi::EventSink {
 public:
  void emit(const dsvmi::Event&) override {
    latencies.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - arrival).count());
  }
  std::chrono::steady_clock::time_point arrival;
  std::vector<double> latencies;
};

void BM_ReplayTrace(benchmark::State& state) {
  const Loaded& l = loaded();
  dsvmi::Status s;
  auto index = dsvmi::Index::open(g_index, &s);
  auto disk = dsvmi::open_disk(g_disk, {}, &s);
  if (!index || !disk) {
    state.SkipWithError(s.message().c_str());
    return;
  }
  LatencySink sink;
  uint64_t events = 0;
  for (auto _ : state) {
    sink.latencies.clear();
    dsvmi::InferenceOptions o;  // pass-all: every file watched, the heaviest mode
    auto engine = dsvmi::InferenceEngine::create(*index, *disk, sink, o, &s);
    for (size_t i = 0; i < l.frames.size(); i++) {
      sink.arrival = std::chrono::steady_clock::now();
      (void)engine->feed_bytes({reinterpret_cast<const std::byte*>(l.frames[i].data()), l.sizes[i]});
    }
    if (dsvmi::Status fs = engine->finish(); !fs) state.SkipWithError(fs.message().c_str());
    events = engine->stats().events;
  }
  std::vector<double> lat = sink.latencies;
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, size_t(p * lat.size()))]; };
  state.SetItemsProcessed(int64_t(state.iterations() * l.frames.size()));
  state.SetBytesProcessed(int64_t(state.iterations() * l.payload_bytes));
  state.counters["events"] = double(events);
  state.counters["latency_p50_us"] = pct(0.50);
  state.counters["latency_p99_us"] = pct(0.99);
  state.counters["latency_max_us"] = lat.empty() ? 0 : lat.back();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  state.counters["peak_rss_MB"] = double(ru.ru_maxrss) / 1024.0;
}
BENCHMARK(BM_ReplayTrace)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same frame bytes, copied once: the bandwidth the engine is compared to.
void BM_MemcpyTraceBytes(benchmark::State& state) {
  const Loaded& l = loaded();
  std::vector<uint8_t> dst(64 << 20);
  for (auto _ : state) {
    for (size_t i = 0; i < l.frames.size(); i++) {
      std::memcpy(dst.data(), l.frames[i].data(), std::min(l.sizes[i], dst.size()));
      benchmark::DoNotOptimize(dst.data());
    }
  }
  state.SetItemsProcessed(int64_t(state.iterations() * l.frames.size()));
  state.SetBytesProcessed(int64_t(state.iterations() * l.payload_bytes));
}
BENCHMARK(BM_MemcpyTraceBytes)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

// --diff-trace BEFORE AFTER OUT: a trace of Write frames for every 4 KiB
// block that differs between two images, then one Flush (how the memory
// measurement at 1M inodes gets its input; see docs/inference.md).
int diff_trace(const char* before, const char* after, const char* out) {
  FILE* a = std::fopen(before, "rb");
  FILE* b = std::fopen(after, "rb");
  dsvmi::Status s;
  auto w = dsvmi::TraceWriter::create(out, &s);
  if (!a || !b || !w) {
    std::fprintf(stderr, "bench_infer: cannot open %s / %s / %s\n", before, after, out);
    return 1;
  }
  std::vector<uint8_t> x(4096), y(4096);
  uint64_t seq = 1, offset = 0, frames = 0;
  auto put = [&](dsvmi::fb::FrameKind kind, uint64_t off, const std::vector<uint8_t>* payload) {
    flatbuffers::FlatBufferBuilder fbb(8192);
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> p = 0;
    if (payload) p = fbb.CreateVector(*payload);
    fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq, kind, off, payload ? payload->size() : 0, seq * 1000, p), "DSVF");
    seq++;
    frames++;
    (void)w->append({reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()});
  };
  while (std::fread(x.data(), 1, 4096, a) == 4096 && std::fread(y.data(), 1, 4096, b) == 4096) {
    if (x != y) put(dsvmi::fb::FrameKind::Write, offset, &y);
    offset += 4096;
  }
  put(dsvmi::fb::FrameKind::Flush, 0, nullptr);
  (void)w->close();
  std::printf("%llu frames\n", (unsigned long long)frames);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--diff-trace") return diff_trace(argv[2], argv[3], argv[4]);
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--trace" && i + 1 < argc) g_trace = argv[++i];
    else if (a == "--index" && i + 1 < argc) g_index = argv[++i];
    else if (a == "--disk" && i + 1 < argc) g_disk = argv[++i];
    else rest.push_back(argv[i]);
  }
  if (g_trace.empty() || g_index.empty() || g_disk.empty()) {
    std::fprintf(stderr, "usage: bench_infer --trace T --index I --disk IMAGE [benchmark flags]\n");
    return 2;
  }
  int n = int(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

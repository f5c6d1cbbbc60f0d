// bench_gate: the gate's query cost on bitmaps shaped like real ext4 metadata,
// next to a flat bitset (one bit per grain) and libroaring's own iterator in
// the same binary; publish and adoption cost vs bitmap size; bytes vs the
// seed's flat 512-byte-sector bitmap. docs/gate.md has the table and command.
//
// Shapes: mkfs.ext4 defaults for 4 KiB blocks (32768 blocks per group, 8192
// inodes x 256 B per group = 512 inode-table blocks, flex_bg 16, sparse_super
// backups in groups 0, 1 and powers of 3, 5, 7, 64-byte group descriptors,
// resize_inode reserve, a journal) plus one directory block per 64 MiB.
#include <roaring/roaring.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "dsvmi/gate.h"
#include "dsvmi/gate_writer.h"

namespace {

using dsvmi::Gate;
using dsvmi::GateMode;

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBlocksPerGroup = 32768;
constexpr uint64_t kFlex = 16;
constexpr uint64_t kInodeTableBlocks = 512;

bool has_backup(uint64_t group) {
  if (group <= 1) return true;
  for (uint64_t base : {3, 5, 7}) {
    uint64_t p = base;
    while (p < group) p *= base;
    if (p == group) return true;
  }
  return false;
}

// Calls add(first_block, count) for every metadata extent of the shape.
template <typename Add>
void ext4_metadata(uint64_t disk_size, Add add) {
  uint64_t blocks = disk_size / kBlock;
  uint64_t groups = (blocks + kBlocksPerGroup - 1) / kBlocksPerGroup;
  uint64_t gdt = (groups * 64 + kBlock - 1) / kBlock;
  uint64_t reserved_gdt = std::min<uint64_t>(1024, gdt < 2048 ? 2048 - gdt : 0);
  for (uint64_t g = 0; g < groups; g++) {
    uint64_t start = g * kBlocksPerGroup;
    uint64_t used = 0;
    if (has_backup(g)) {
      used = 1 + gdt + reserved_gdt;  // superblock, descriptors, reserve
      add(start, used);
    }
    if (g % kFlex == 0) {  // this flex group's bitmaps and inode tables
      uint64_t n = std::min(kFlex, groups - g);
      add(start + used, n * (2 + kInodeTableBlocks));
    }
  }
  uint64_t journal = disk_size >= (128ull << 30) ? 262144 : 32768;
  add((groups / 2) * kBlocksPerGroup + 8192 + 1024, std::min(journal, kBlocksPerGroup - 9216));
  std::mt19937_64 rng(disk_size);
  for (uint64_t i = 0; i < disk_size / (64ull << 20); i++) add(rng() % blocks, 1);  // directories
}

bool flat_any(const std::vector<uint64_t>& flat, uint64_t g0, uint64_t g1) {
  uint64_t w0 = g0 >> 6, w1 = g1 >> 6;
  uint64_t first = ~0ull << (g0 & 63), last = ~0ull >> (63 - (g1 & 63));
  if (w0 == w1) return flat[w0] & first & last;
  if (flat[w0] & first) return true;
  for (uint64_t w = w0 + 1; w < w1; w++)
    if (flat[w]) return true;
  return flat[w1] & last;
}

// One gate per disk size, with its reader and a flat bitset of the same bits.
struct Shape {
  uint64_t disk_size = 0;
  std::string path;
  std::unique_ptr<Gate> gate;
  dsvmi_gate_reader_t* reader = nullptr;
  std::vector<uint64_t> flat;  // one bit per 4 KiB grain
  roaring_bitmap_t* roaring = nullptr;

  ~Shape() {
    dsvmi_gate_reader_close(reader);
    if (roaring) roaring_bitmap_free(roaring);
    if (!path.empty()) unlink(path.c_str());
  }
};

Shape& shape(uint64_t disk_size) {
  static std::map<uint64_t, std::unique_ptr<Shape>> shapes;
  auto& s = shapes[disk_size];
  if (s) return *s;
  s = std::make_unique<Shape>();
  s->disk_size = disk_size;
  s->path = "/dev/shm/dsvmi-bench-gate-" + std::to_string(getpid()) + "-" + std::to_string(disk_size);
  if (!Gate::create(s->path, {disk_size, 4096, GateMode::kSet}, &s->gate)) std::abort();
  uint64_t grains = disk_size / kBlock;
  s->flat.assign((grains + 63) / 64, 0);
  ext4_metadata(disk_size, [&](uint64_t first, uint64_t count) {
    count = std::min(count, grains - first);
    (void)s->gate->set_grains({first, count});
    for (uint64_t g = first; g < first + count; g++) s->flat[g >> 6] |= 1ull << (g & 63);
  });
  s->gate->optimize();
  if (!s->gate->publish()) std::abort();
  s->reader = dsvmi_gate_reader_open(s->path.c_str(), nullptr, 0);
  if (!s->reader) std::abort();
  dsvmi_gate_should_pass(s->reader, 0, 1);  // adopt outside the timing
  // the gate must answer like the flat bitset before its speed means anything
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; i++) {
    uint64_t g0 = rng() % grains, g1 = std::min(grains - 1, g0 + rng() % 64);
    if (dsvmi_gate_should_pass(s->reader, g0 * kBlock, (g1 - g0 + 1) * kBlock) !=
        flat_any(s->flat, g0, g1)) {
      std::fprintf(stderr, "bench_gate: gate and flat bitset disagree at grains %llu..%llu\n",
                   static_cast<unsigned long long>(g0), static_cast<unsigned long long>(g1));
      std::abort();
    }
  }
  // the same bitmap as a plain CRoaring bitmap, for the library baseline
  s->roaring = roaring_bitmap_create();
  ext4_metadata(disk_size, [&](uint64_t first, uint64_t count) {
    count = std::min(count, grains - first);
    roaring_bitmap_add_range(s->roaring, first, first + count);
  });
  roaring_bitmap_run_optimize(s->roaring);
  return *s;
}

bool roaring_any(const roaring_bitmap_t* r, uint32_t g0, uint32_t g1) {
  roaring_uint32_iterator_t it;
  roaring_init_iterator(r, &it);
  return roaring_move_uint32_iterator_equalorlarger(&it, g0) && it.current_value <= g1;
}

enum Impl { kGate = 0, kFlat = 1, kRoaring = 2 };
enum Pattern { kRandom = 0, kSequential = 1 };

// Offsets of 64 Ki writes: random write-aligned offsets, or one sequential
// stream starting at a random place and wrapping at the disk end.
std::vector<uint64_t> offsets(uint64_t disk_size, uint64_t len, Pattern p) {
  std::mt19937_64 rng(len * 31 + p);
  std::vector<uint64_t> out(65536);
  uint64_t slots = disk_size / len;
  uint64_t pos = rng() % slots;
  for (auto& o : out) {
    o = (p == kRandom ? rng() % slots : pos++ % slots) * len;
  }
  return out;
}

template <typename Query>
void run_queries(benchmark::State& state, const std::vector<uint64_t>& offs, Query query) {
  size_t i = 0;
  uint64_t passed = 0;
  for (auto _ : state) {
    bool p = query(offs[i++ & 65535]);
    passed += p;
    benchmark::DoNotOptimize(p);
  }
  // p50/p99 of the per-query mean over batches of 64 (a single query is
  // shorter than a clock read): a histogram of 4096 batches after the run.
  std::vector<double> batch_ns(4096);
  for (auto& b : batch_ns) {
    auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < 64; k++) benchmark::DoNotOptimize(query(offs[i++ & 65535]));
    auto t1 = std::chrono::steady_clock::now();
    b = std::chrono::duration<double, std::nano>(t1 - t0).count() / 64;
  }
  std::sort(batch_ns.begin(), batch_ns.end());
  state.counters["p50_ns"] = batch_ns[batch_ns.size() / 2];
  state.counters["p99_ns"] = batch_ns[batch_ns.size() * 99 / 100];
  state.counters["pass_ratio"] =
      benchmark::Counter(static_cast<double>(passed) / static_cast<double>(state.iterations()));
}

// args: disk GiB, write bytes, pattern, implementation
void BM_Query(benchmark::State& state) {
  uint64_t disk = static_cast<uint64_t>(state.range(0)) << 30;
  uint64_t len = static_cast<uint64_t>(state.range(1));
  auto pattern = static_cast<Pattern>(state.range(2));
  auto impl = static_cast<Impl>(state.range(3));
  Shape& s = shape(disk);
  std::vector<uint64_t> offs = offsets(disk, len, pattern);
  state.SetLabel(std::string(impl == kGate ? "gate" : impl == kFlat ? "flat-bitset" : "croaring-iter") +
                 (pattern == kRandom ? " random" : " sequential"));
  switch (impl) {
    case kGate:
      run_queries(state, offs, [&](uint64_t o) { return dsvmi_gate_should_pass(s.reader, o, len); });
      break;
    case kFlat:
      run_queries(state, offs, [&](uint64_t o) { return flat_any(s.flat, o >> 12, (o + len - 1) >> 12); });
      break;
    case kRoaring:
      run_queries(state, offs, [&](uint64_t o) {
        return roaring_any(s.roaring, static_cast<uint32_t>(o >> 12),
                           static_cast<uint32_t>((o + len - 1) >> 12));
      });
      break;
  }
}

void QueryArgs(benchmark::internal::Benchmark* b) {
  for (int64_t gib : {20, 1024, 16384})
    for (int64_t len : {4096, 131072})
      for (int64_t pattern : {kRandom, kSequential})
        for (int64_t impl : {kGate, kFlat, kRoaring}) b->Args({gib, len, pattern, impl});
}
BENCHMARK(BM_Query)->Apply(QueryArgs)->ArgNames({"GiB", "len", "seq", "impl"});

// Publish: run_optimize + frozen serialization into a free slot + checksum +
// the flip. One grain toggles between publishes, like a directory growing.
void BM_Publish(benchmark::State& state) {
  uint64_t disk = static_cast<uint64_t>(state.range(0)) << 30;
  Shape& s = shape(disk);
  uint64_t grain = disk / kBlock / 3 + 1;
  bool on = false;
  for (auto _ : state) {
    on = !on;
    (void)(on ? s.gate->set_grains({grain, 1}) : s.gate->clear_grains({grain, 1}));
    if (!s.gate->publish()) state.SkipWithError("publish failed");
  }
  uint64_t bytes = s.gate->published_bytes();
  uint64_t flat_sector = disk / 512 / 8;
  state.counters["bitmap_bytes"] = static_cast<double>(bytes);
  state.counters["set_grains"] = static_cast<double>(s.gate->set_grain_count());
  state.counters["flat_sector_bytes"] = static_cast<double>(flat_sector);
  state.counters["flat_over_bitmap"] = static_cast<double>(flat_sector) / static_cast<double>(bytes);
  state.counters["publishes_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Publish)->Arg(20)->Arg(1024)->Arg(16384)->ArgName("GiB");

// Adoption: what the reader pays once per new generation (checksum + index
// build), measured as publish+query minus publish.
void BM_PublishAndAdopt(benchmark::State& state) {
  uint64_t disk = static_cast<uint64_t>(state.range(0)) << 30;
  Shape& s = shape(disk);
  uint64_t grain = disk / kBlock / 3 + 1;
  bool on = false;
  for (auto _ : state) {
    on = !on;
    (void)(on ? s.gate->set_grains({grain, 1}) : s.gate->clear_grains({grain, 1}));
    if (!s.gate->publish()) state.SkipWithError("publish failed");
    benchmark::DoNotOptimize(dsvmi_gate_should_pass(s.reader, grain * kBlock, 4096));
  }
  state.counters["bitmap_bytes"] = static_cast<double>(s.gate->published_bytes());
}
BENCHMARK(BM_PublishAndAdopt)->Arg(20)->Arg(1024)->Arg(16384)->ArgName("GiB");

}  // namespace

BENCHMARK_MAIN();

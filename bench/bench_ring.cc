// bench_ring: throughput of the shared-memory ring across processes, with a
// plain memcpy baseline of the same sizes in the same binary, so the ratio
// ring/memcpy is read from one run (docs/ring.md has the table and command).
//
//   BM_RingCrossProcess/N  producer (RingProducer, what QEMU runs) in a forked
//                          child copies an N-byte payload from one source
//                          buffer into a 64 MiB ring; the consumer (this
//                          process) dequeues in bursts of 32, verifies every
//                          frame (DecodeFrame) and releases. The producer
//                          waits for room instead of dropping.
//   BM_Memcpy/N            memcpy of the same N-byte source buffer into a
//                          64 MiB destination, cycling: the same cold
//                          destination, the same hot source.
//   BM_MemcpyStream/N      the same with the ring's streaming
//                          (non-temporal) copy primitive.
//   BM_FrameBuildVerify/N  one frame built in place (builder + iovec copy)
//                          and decoded/verified, single thread, hot cache.
#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <emmintrin.h>
#include <time.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <cstring>
#include <string>
#include <vector>

#include "dsvmi/ring_consumer.h"
#include "frame_builder.h"
#include "producer.h"

namespace {

constexpr uint64_t kRingBytes = 64ull << 20;
constexpr size_t kDestBytes = 64ull << 20;

struct Control {
  std::atomic<int> start{0};
  std::atomic<int> stop{0};
  std::atomic<uint64_t> producer_cpu_ns{0};  // producer thread CPU time between start and stop
  std::atomic<uint64_t> producer_frames{0};
};

uint64_t ThreadCpuNs() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t ProcessCpuNs() {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void BM_RingCrossProcess(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::string path = "/dev/shm/dsvmi-bench-ring-" + std::to_string(getpid());
  unlink(path.c_str());
  std::string err;
  auto consumer = dsvmi::RingConsumer::Create(path, kRingBytes, &err);
  if (!consumer) {
    state.SkipWithError(err.c_str());
    return;
  }
  void* shared = mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* ctl = new (shared) Control;
  // DSVMI_BENCH_PIN=1: consumer on CPU 0, producer on CPU 1, so the two
  // always run on different cores (the cross-core hand-off is measured even
  // when other load would otherwise make them time-share one core).
  const bool pin = std::getenv("DSVMI_BENCH_PIN") != nullptr;
  cpu_set_t saved_mask;
  sched_getaffinity(0, sizeof saved_mask, &saved_mask);
  auto pin_to = [](int cpu) {
    cpu_set_t m;
    CPU_ZERO(&m);
    CPU_SET(cpu, &m);
    sched_setaffinity(0, sizeof m, &m);
  };
  pid_t child = fork();
  if (child == 0) {
    if (pin) pin_to(1);
    std::string why;
    auto p = dsvmi::ring::RingProducer::Open(path, &why);
    if (!p) _exit(2);
    std::vector<uint8_t> src(size, 0x5a);
    struct iovec iov = {src.data(), size};
    while (!ctl->start.load(std::memory_order_acquire)) usleep(50);
    const uint64_t cpu0 = ThreadCpuNs();
    uint64_t offset = 0, produced = 0;
    while (!ctl->stop.load(std::memory_order_relaxed)) {
      if (!p->HasRoomFor(size)) {
        __builtin_ia32_pause();
        continue;
      }
      p->Produce(DSVMI_FRAME_WRITE, offset, size, &iov, 1, 0);
      offset += size;
      produced++;
    }
    ctl->producer_cpu_ns.store(ThreadCpuNs() - cpu0);
    ctl->producer_frames.store(produced);
    _exit(0);
  }
  if (pin) pin_to(0);
  dsvmi::FrameView views[32];
  uint64_t frames = 0;
  ctl->start.store(1, std::memory_order_release);
  const uint64_t cons_cpu0 = ThreadCpuNs();
  for (auto _ : state) {
    size_t n = consumer->Dequeue(views, 32);
    if (n == 0) {
      // Empty: back off a little so polling does not steal the producer's
      // cache line on every iteration.
      for (int i = 0; i < 16; i++) __builtin_ia32_pause();
      continue;
    }
    frames += n;
    consumer->ReleaseAll();
  }
  const uint64_t cons_cpu_ns = ThreadCpuNs() - cons_cpu0;
  ctl->stop.store(1);
  int status = 0;
  waitpid(child, &status, 0);
  if (pin) sched_setaffinity(0, sizeof saved_mask, &saved_mask);
  if (consumer->error_count()) state.SkipWithError(consumer->last_error().c_str());
  state.SetItemsProcessed(static_cast<int64_t>(frames));
  state.SetBytesProcessed(static_cast<int64_t>(frames * size));
  // On a shared machine wall-clock rates depend on who else runs; the
  // producer's bytes per CPU-second (spinning for room included, so an upper
  // bound on its cost) compares with BM_Memcpy's cpu_GBps regardless of load.
  const double cpu_s = static_cast<double>(ctl->producer_cpu_ns.load()) / 1e9;
  if (cpu_s > 0) {
    state.counters["prod_cpu_GBps"] = static_cast<double>(ctl->producer_frames.load()) * size / cpu_s / 1e9;
    state.counters["prod_cpu_ns_per_frame"] = cpu_s * 1e9 / static_cast<double>(ctl->producer_frames.load());
  }
  // The consumer's CPU per frame (polling an empty ring included).
  if (frames) state.counters["cons_cpu_ns_per_frame"] = static_cast<double>(cons_cpu_ns) / static_cast<double>(frames);
  consumer.reset();
  unlink(path.c_str());
  munmap(shared, sizeof(Control));
}

// Copies `size` bytes per iteration into a cold destination with `copy`.
template <typename Copy>
void CopyBaseline(benchmark::State& state, Copy copy) {
  const size_t size = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> src(size, 0x5a);
  auto* dst = static_cast<uint8_t*>(mmap(nullptr, kDestBytes, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  size_t off = 0;
  const uint64_t cpu0 = ProcessCpuNs();
  for (auto _ : state) {
    copy(dst + off, src.data(), size);
    benchmark::DoNotOptimize(dst + off);
    off += size;
    if (off + size > kDestBytes) off = 0;
  }
  benchmark::ClobberMemory();
  const double cpu_s = static_cast<double>(ProcessCpuNs() - cpu0) / 1e9;
  state.counters["cpu_GBps"] = static_cast<double>(state.iterations()) * size / cpu_s / 1e9;
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  munmap(dst, kDestBytes);
}

void BM_Memcpy(benchmark::State& state) {
  CopyBaseline(state, [](uint8_t* d, const uint8_t* s, size_t n) { std::memcpy(d, s, n); });
}

// The same, with the streaming (non-temporal) copy the ring uses for
// payloads >= kStreamingCopyMin: the ring's own copy primitive as baseline.
void BM_MemcpyStream(benchmark::State& state) {
  CopyBaseline(state, [](uint8_t* d, const uint8_t* s, size_t n) {
    dsvmi::ring::CopyStreaming(d, s, n);
    _mm_sfence();
  });
}

void BM_FrameBuildVerify(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const size_t region = dsvmi::ring::FrameRegionBound(size);
  dsvmi::ring::InPlaceFrameBuilder builder(region);
  std::vector<uint64_t> mem(region / 8 + 1);
  auto* base = reinterpret_cast<uint8_t*>(mem.data());
  std::vector<uint8_t> src(size, 0x5a);
  struct iovec iov = {src.data(), size};
  dsvmi::ring::FrameFields f;
  f.kind = DSVMI_FRAME_WRITE;
  f.length = size;
  dsvmi::FrameView v;
  std::string err;
  for (auto _ : state) {
    f.seq++;
    size_t n = builder.Build(base, region, f, true, &iov, 1, 0, size);
    if (!dsvmi::DecodeFrame(base + region - n, n, &v, &err)) state.SkipWithError(err.c_str());
    benchmark::DoNotOptimize(v.payload);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t s : {int64_t{64}, int64_t{4096}, int64_t{65536}, int64_t{1} << 20}) b->Arg(s);
}

BENCHMARK(BM_RingCrossProcess)->Apply(Sizes)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Memcpy)->Apply(Sizes)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_MemcpyStream)->Apply(Sizes)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_FrameBuildVerify)->Apply(Sizes)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// ring_latency: the doorbell's latency for sporadic frames, and what an idle
// consumer costs (docs/ring.md, "Doorbell").
//
//   ring_latency [--frames N] [--interval-ms MS] [--producer-lib PATH]
//                [--attach-after-ms MS]
//
// A forked child opens the ring through the C ABI (what QEMU calls) and
// produces one 4 KiB Write frame every MS milliseconds (default 20, jittered
// uniformly by +-25% so frames do not keep one phase against the consumer's
// tick), N frames (default 200). With --producer-lib the child dlopen()s that
// libdsvmi-producer.so instead of the one linked in, e.g. an older build's, to
// measure a mixed pairing; --attach-after-ms makes the child open the ring
// only after that long (the consumer is idle by then). The parent consumes like `dsvmi run` does
// (Dequeue, ReleaseAll, Wait(100 ms) when empty) and records, per frame,
// CLOCK_MONOTONIC at dequeue minus the frame's timestamp_ns (taken by the
// producer while building it, CLOCK_MONOTONIC too).
//
// Prints one line: delivery latency median/p90/p99/max in microseconds, the
// producer's time inside dsvmi_ring_produce() (median/p99: includes the futex
// wake when it rings), and both processes' CPU time. Uses only the public
// APIs, so it also builds against an older tree for a before/after.
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dsvmi/ring.h"
#include "dsvmi/ring_consumer.h"

namespace {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double CpuSeconds(const struct rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double Percentile(std::vector<int64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
}

// The producer's side, in the child. Reports its produce() call durations
// through `out` (a shared mapping of `frames` int64).
int Produce(const std::string& ring, const char* lib, int frames, int interval_ms, int attach_after_ms,
            int64_t* out) {
  using OpenFn = decltype(&dsvmi_ring_producer_open);
  using ProduceFn = decltype(&dsvmi_ring_produce);
  using CloseFn = decltype(&dsvmi_ring_producer_close);
  OpenFn open_fn = &dsvmi_ring_producer_open;
  ProduceFn produce_fn = &dsvmi_ring_produce;
  CloseFn close_fn = &dsvmi_ring_producer_close;
  if (lib) {
    void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      std::fprintf(stderr, "ring_latency: dlopen %s: %s\n", lib, dlerror());
      return 1;
    }
    open_fn = reinterpret_cast<OpenFn>(dlsym(h, "dsvmi_ring_producer_open"));
    produce_fn = reinterpret_cast<ProduceFn>(dlsym(h, "dsvmi_ring_produce"));
    close_fn = reinterpret_cast<CloseFn>(dlsym(h, "dsvmi_ring_producer_close"));
    if (!open_fn || !produce_fn || !close_fn) {
      std::fprintf(stderr, "ring_latency: %s lacks the producer ABI\n", lib);
      return 1;
    }
  }
  if (attach_after_ms > 0) usleep(static_cast<useconds_t>(attach_after_ms) * 1000);
  char err[256] = "";
  dsvmi_ring_producer_t* p = open_fn(ring.c_str(), err, sizeof err);
  if (!p) {
    std::fprintf(stderr, "ring_latency: producer: %s\n", err);
    return 1;
  }
  std::vector<uint8_t> payload(4096, 0x5a);
  struct iovec iov = {payload.data(), payload.size()};
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> jitter(-interval_ms * 250000LL, interval_ms * 250000LL);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (int i = 0; i < frames; i++) {
    int64_t t = static_cast<int64_t>(next.tv_sec) * 1000000000 + next.tv_nsec + interval_ms * 1000000LL + jitter(rng);
    next.tv_sec = static_cast<time_t>(t / 1000000000);
    next.tv_nsec = static_cast<long>(t % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) != 0) {
    }
    const int64_t t0 = NowNs();
    const int ok = produce_fn(p, DSVMI_FRAME_WRITE, static_cast<uint64_t>(i) * 4096, 4096, &iov, 1, 0);
    out[i] = NowNs() - t0;
    if (!ok) std::fprintf(stderr, "ring_latency: frame %d dropped\n", i);
  }
  close_fn(p);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int frames = 200, interval_ms = 20, attach_after_ms = 0;
  const char* lib = nullptr;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--frames") && i + 1 < argc) {
      frames = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--interval-ms") && i + 1 < argc) {
      interval_ms = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--attach-after-ms") && i + 1 < argc) {
      attach_after_ms = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--producer-lib") && i + 1 < argc) {
      lib = argv[++i];
    } else {
      std::fprintf(stderr, "usage: ring_latency [--frames N] [--interval-ms MS] [--producer-lib PATH] "
                           "[--attach-after-ms MS]\n");
      return 2;
    }
  }
  if (frames <= 0 || interval_ms <= 0) return 2;
  const std::string ring = "/dev/shm/dsvmi-ring-latency-" + std::to_string(getpid());
  std::string err;
  auto c = dsvmi::RingConsumer::Create(ring, 64ull << 20, &err);
  if (!c) {
    std::fprintf(stderr, "ring_latency: %s\n", err.c_str());
    return 1;
  }
  auto* produce_ns = static_cast<int64_t*>(mmap(nullptr, sizeof(int64_t) * static_cast<size_t>(frames),
                                                PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (produce_ns == MAP_FAILED) return 1;
  struct rusage before;
  getrusage(RUSAGE_SELF, &before);
  const pid_t child = fork();
  if (child == 0) _exit(Produce(ring, lib, frames, interval_ms, attach_after_ms, produce_ns));

  std::vector<int64_t> latency;
  latency.reserve(static_cast<size_t>(frames));
  std::vector<dsvmi::FrameView> views(32);
  int status = 0;
  bool child_done = false;
  while (static_cast<int>(latency.size()) < frames) {
    size_t n = c->Dequeue(views.data(), views.size());
    const int64_t now = NowNs();
    for (size_t i = 0; i < n; i++) latency.push_back(now - static_cast<int64_t>(views[i].timestamp_ns));
    c->ReleaseAll();
    if (n == 0) {
      if (!child_done && waitpid(child, &status, WNOHANG) == child) child_done = true;
      if (child_done && !c->Wait(0)) break;  // the child died early
      c->Wait(100 * 1000 * 1000);
    }
  }
  struct rusage after, child_ru;
  getrusage(RUSAGE_SELF, &after);
  if (!child_done) wait4(child, &status, 0, &child_ru);
  else getrusage(RUSAGE_CHILDREN, &child_ru);
  unlink(ring.c_str());
  if (static_cast<int>(latency.size()) != frames || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "ring_latency: got %zu of %d frames\n", latency.size(), frames);
    return 1;
  }
  std::vector<int64_t> produce(produce_ns, produce_ns + frames);
  std::printf("frames %d interval %d ms%s%s: latency us median %.1f p90 %.1f p99 %.1f max %.1f | "
              "produce() us median %.2f p99 %.2f | consumer CPU %.3f s, producer CPU %.3f s\n",
              frames, interval_ms, lib ? " producer-lib " : "", lib ? lib : "", Percentile(latency, 0.5),
              Percentile(latency, 0.9), Percentile(latency, 0.99), Percentile(latency, 1.0), Percentile(produce, 0.5),
              Percentile(produce, 0.99), CpuSeconds(after) - CpuSeconds(before), CpuSeconds(child_ru));
  return 0;
}

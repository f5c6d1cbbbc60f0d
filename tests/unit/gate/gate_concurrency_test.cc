// One thread publishes continuously while another queries: every answer must
// be the answer of a generation published during that query's window (or a
// counted fallback "pass"). Labelled tsan: run under ThreadSanitizer too.
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dsvmi/gate.h"
#include "dsvmi/gate_writer.h"
#include "gate_test_util.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DSVMI_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define DSVMI_SANITIZED 1
#endif
#endif
#ifdef DSVMI_SANITIZED
constexpr uint64_t kQueries = 300'000;
constexpr uint64_t kMinAdoptions = 100;
#else
constexpr uint64_t kQueries = 4'000'000;
constexpr uint64_t kMinAdoptions = 2000;
#endif
// On a loaded machine the two threads may rarely run at the same time; keep
// querying (up to 25x) until the reader has followed enough generations.
constexpr uint64_t kMaxQueries = 25 * kQueries;

namespace dsvmi {
namespace {

constexpr uint64_t kDisk = 1ull << 30;  // 262144 grains of 4 KiB: 4 containers
constexpr uint64_t kGrains = kDisk >> 12;
constexpr uint64_t kPatterns = 1024;

// Generation g holds pattern g % kPatterns: random intervals, so that a query
// distinguishes most pairs of generations and a torn or stale-beyond-window
// view shows up as a wrong answer.
struct Pattern {
  std::vector<std::pair<uint64_t, uint64_t>> intervals;  // grains [a, b)
  bool any(uint64_t g0, uint64_t g1) const {            // grains [g0, g1]
    for (auto [a, b] : intervals)
      if (a <= g1 && g0 < b) return true;
    return false;
  }
};

std::vector<Pattern> make_patterns() {
  std::mt19937_64 rng(1234);
  std::vector<Pattern> out(kPatterns);
  for (auto& p : out) {
    int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; i++) {
      uint64_t a = rng() % kGrains;
      uint64_t len = rng() % 2 ? 1 + rng() % 16 : 1 + rng() % 20000;
      p.intervals.push_back({a, std::min(kGrains, a + len)});
    }
  }
  return out;
}

TEST(GateConcurrency, EveryAnswerBelongsToAPublishedGeneration) {
  const std::vector<Pattern> patterns = make_patterns();
  test::ScratchPath path("conc");
  std::unique_ptr<Gate> gate;
  ASSERT_TRUE(Gate::create(path.str(), {kDisk, 4096, GateMode::kSet}, &gate));
  // generation 1 is the empty set; make generation 2 pattern 2, and so on
  std::atomic<uint64_t> published{1};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t g = 2; !stop.load(std::memory_order_relaxed); g++) {
      (void)gate->clear_grains({0, kGrains});
      for (auto [a, b] : patterns[g % kPatterns].intervals) (void)gate->set_grains({a, b - a});
      if (!gate->publish()) std::abort();
      published.store(g, std::memory_order_release);
    }
  });

  char err[256] = "";
  dsvmi_gate_reader_t* reader = dsvmi_gate_reader_open(path.c_str(), err, sizeof(err));
  ASSERT_NE(reader, nullptr) << err;
  std::mt19937_64 rng(99);
  uint64_t mismatches = 0, spans = 0, fallback_answers = 0;
  uint64_t q = 0;
  for (; q < kMaxQueries; q++) {
    if (q >= kQueries && (q & 4095) == 0 && gate->reader_counters().adoptions >= kMinAdoptions) break;
    uint64_t g0 = rng() % kGrains;
    uint64_t len = rng() % 4 ? 1 : 1 + rng() % 64;  // 4 KiB or up to 256 KiB
    uint64_t g1 = std::min(kGrains - 1, g0 + len - 1);
    uint64_t fallbacks = gate->reader_counters().fallbacks;  // written by this thread
    uint64_t lo = published.load(std::memory_order_acquire);
    bool got = dsvmi_gate_should_pass(reader, g0 << 12, (g1 - g0 + 1) << 12);
    uint64_t hi = published.load(std::memory_order_acquire);
    spans += hi - lo;
    // The writer bumps `published` after publish() returns, so the reader may
    // already see generation hi + 1: the window is [lo, hi + 1].
    bool ok = false;
    for (uint64_t g = lo; g <= hi + 1 && !ok; g++) {
      bool expect = g == 1 ? false : patterns[g % kPatterns].any(g0, g1);
      ok = expect == got;
    }
    if (!ok && got && gate->reader_counters().fallbacks == fallbacks + 1) {
      ok = true;  // this very query gave up adopting under contention and passed
      fallback_answers++;
    }
    if (!ok && ++mismatches < 5) {
      ADD_FAILURE() << "query " << q << " grains [" << g0 << ", " << g1 << "] answered " << got
                    << ", no generation in [" << lo << ", " << hi + 1 << "] says so";
    }
  }
  stop = true;
  writer.join();
  EXPECT_EQ(mismatches, 0u);
  EXPECT_STREQ(dsvmi_gate_reader_error(reader), "");
  GateCounters c = gate->reader_counters();
  EXPECT_EQ(c.rejected, 0u);
  EXPECT_EQ(c.writes_passed + c.writes_dropped, q);
  // the test is only meaningful if the reader really followed the writer
  EXPECT_GE(c.adoptions, kMinAdoptions) << "generations published: " << published.load();
  RecordProperty("generations", std::to_string(published.load()));
  RecordProperty("adoptions", std::to_string(c.adoptions));
  RecordProperty("fallback_answers", std::to_string(fallback_answers));
  std::printf("queries %llu generations %llu (%llu during queries) adoptions %llu fallbacks %llu\n",
              static_cast<unsigned long long>(q),
              static_cast<unsigned long long>(published.load()),
              static_cast<unsigned long long>(spans),
              static_cast<unsigned long long>(c.adoptions),
              static_cast<unsigned long long>(c.fallbacks));
  dsvmi_gate_reader_close(reader);
}

}  // namespace
}  // namespace dsvmi

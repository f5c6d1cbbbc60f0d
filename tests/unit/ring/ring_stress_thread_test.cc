// The stress test with the producer in a thread instead of a process, so
// ThreadSanitizer can check the ring's synchronisation (label tsan).
#include <thread>

#include "ring_stress.h"

namespace dsvmi {
namespace {

#if defined(__SANITIZE_THREAD__)
// TSan slows the producer ~20x: a smaller ring and longer stalls still make
// it overflow (frames above the 1 MiB ring's largest payload become counted
// drops too, a path worth racing).
constexpr uint64_t kDefaultFrames = 300'000;
constexpr uint64_t kCapacity = 1 << 20;
constexpr int kStallMs = 300;
#elif defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kDefaultFrames = 500'000;
constexpr uint64_t kCapacity = test::kStressCapacity;
constexpr int kStallMs = 50;
#else
constexpr uint64_t kDefaultFrames = 2'000'000;
constexpr uint64_t kCapacity = test::kStressCapacity;
constexpr int kStallMs = 50;
#endif

TEST(RingStress, ThreadedProducerEveryFrameBitExactAndAccounted) {
  const uint64_t frames = test::StressFrames(kDefaultFrames);
  test::TempRingPath path;
  std::string err;
  auto c = RingConsumer::Create(path.path(), kCapacity, &err);
  ASSERT_TRUE(c) << err;
  dsvmi_ring_producer_stats ps{};
  std::string why;
  std::atomic<bool> done{false};
  bool ok = false;
  std::thread producer([&] {
    ok = test::RunStressProducer(path.path(), frames, &ps, &why);
    done.store(true, std::memory_order_release);
  });
  test::StressChecker check;
  std::vector<FrameView> views(64);
  bool failed = false;
  for (;;) {
    const bool finished = done.load(std::memory_order_acquire);
    const uint64_t before = check.next_seq();
    size_t n = c->Dequeue(views.data(), views.size());
    for (size_t i = 0; i < n && !failed; i++) {
      check.OnFrame(views[i]);
      failed = testing::Test::HasFatalFailure();
    }
    if (n) c->ReleaseAll();
    if (n && !failed) test::MaybeStall(*c, before, check.next_seq(), kStallMs);
    if (failed) break;  // the producer still finishes: it never blocks on us... except in lossless phases
    if (n == 0 && finished) break;
    if (n == 0) c->Wait(1'000'000);
  }
  if (failed) {
    // Keep draining so a producer waiting for room can finish.
    while (!done.load(std::memory_order_acquire)) {
      if (c->Dequeue(views.data(), views.size())) c->ReleaseAll();
    }
  }
  producer.join();
  ASSERT_FALSE(failed);
  ASSERT_TRUE(ok) << why;
  check.Finish(*c, ps, frames);
}

}  // namespace
}  // namespace dsvmi

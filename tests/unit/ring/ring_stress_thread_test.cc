// The stress test with the producer in a thread instead of a process, so
// ThreadSanitizer can check the ring's synchronisation (label tsan).
#include <thread>

#include "ring_stress.h"

namespace dsvmi {
namespace {

#if defined(__SANITIZE_THREAD__)
constexpr uint64_t kDefaultFrames = 300'000;
#elif defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kDefaultFrames = 500'000;
#else
constexpr uint64_t kDefaultFrames = 2'000'000;
#endif

TEST(RingStress, ThreadedProducerEveryFrameBitExactAndAccounted) {
  const uint64_t frames = test::StressFrames(kDefaultFrames);
  test::TempRingPath path;
  std::string err;
  auto c = RingConsumer::Create(path.path(), test::kStressCapacity, &err);
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
    const uint64_t before = check.seen();
    size_t n = c->Dequeue(views.data(), views.size());
    for (size_t i = 0; i < n && !failed; i++) {
      check.OnFrame(views[i]);
      failed = testing::Test::HasFatalFailure();
    }
    if (n) c->ReleaseAll();
    if (n && !failed) test::MaybeStall(*c, before, check.seen(), check.last_seq());
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

// The producer's hot path allocates nothing: this binary replaces the global
// operator new/new[] with a counting version and produces frames of every
// kind, including drops and Lost frames, between two counter readings.
// (FlatBuffers' default allocator uses new[], so a builder that escaped our
// slot allocator would be caught here.)
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "dsvmi/ring.h"
#include "dsvmi/ring_consumer.h"
#include "ring_test_util.h"

namespace {
std::atomic<uint64_t> g_news{0};
}

void* operator new(size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace dsvmi {
namespace {

TEST(RingProducer, HotPathAllocatesNothing) {
  test::TempRingPath path;
  std::string err;
  auto c = RingConsumer::Create(path.path(), 64 * 1024, &err);
  ASSERT_TRUE(c) << err;
  char perr[256];
  dsvmi_ring_producer_t* p = dsvmi_ring_producer_open(path.path().c_str(), perr, sizeof perr);
  ASSERT_NE(p, nullptr) << perr;
  std::vector<uint8_t> payload(20000, 7);
  std::vector<struct iovec> iov = {{payload.data(), 3000}, {payload.data() + 3000, 17000}};
  FrameView views[64];
  uint64_t ok = 0, dropped = 0;
  const uint64_t before = g_news.load();
  for (int round = 0; round < 200; round++) {
    // Fill until drops happen, then drain; the next produce emits a Lost frame.
    for (int i = 0; i < 40; i++) {
      const uint64_t len = (round * 131 + i * 977) % payload.size();
      int r = dsvmi_ring_produce(p, static_cast<dsvmi_frame_kind>(1 + i % 4), i * 4096ull, len, iov.data(), 2,
                                 i % 7);
      (r ? ok : dropped)++;
    }
    while (size_t n = c->Dequeue(views, 64)) c->Release(views[n - 1]);
  }
  const uint64_t after = g_news.load();
  dsvmi_ring_producer_close(p);
  EXPECT_GT(ok, 1000u);
  EXPECT_GT(dropped, 100u);
  // The consumer side (Dequeue/Release) allocates nothing either when frames
  // are valid (errors build a message string, which may allocate).
  EXPECT_EQ(after - before, 0u) << "allocations on the produce/dequeue path";
}

}  // namespace
}  // namespace dsvmi

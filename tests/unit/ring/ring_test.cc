// Ring behaviour through the public APIs: the C producer ABI (what QEMU
// calls) and the C++ consumer. The oracle is the reference model in
// ring_test_util.h (frame content derived from its sequence number) and
// plain arithmetic on the request stream, never the ring's own output.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <fcntl.h>
#include <thread>

#include "dsvmi/frame_generated.h"
#include "dsvmi/ring.h"
#include "dsvmi/ring_consumer.h"
#include "dsvmi/ring_inspect.h"
#include "frame_builder.h"
#include "producer.h"
#include "ring_layout.h"
#include "ring_lock.h"
#include "ring_test_util.h"

namespace dsvmi {
namespace {

using test::Model;
using test::ModelPayload;
using test::TempRingPath;

struct ProducerCloser {
  void operator()(dsvmi_ring_producer_t* p) const { dsvmi_ring_producer_close(p); }
};
using ProducerPtr = std::unique_ptr<dsvmi_ring_producer_t, ProducerCloser>;

ProducerPtr OpenProducer(const std::string& path) {
  char err[256] = "";
  ProducerPtr p(dsvmi_ring_producer_open(path.c_str(), err, sizeof err));
  EXPECT_TRUE(p) << err;
  return p;
}

std::unique_ptr<RingConsumer> CreateRing(const std::string& path, uint64_t cap) {
  std::string err;
  auto c = RingConsumer::Create(path, cap, &err);
  EXPECT_TRUE(c) << err;
  return c;
}

// Produces the model frame `seq` through the C ABI, payload scattered.
int ProduceModel(dsvmi_ring_producer_t* p, uint64_t seq, uint64_t max_large, std::mt19937_64& rng,
                 test::Scatter& sc) {
  auto m = Model(seq, max_large);
  if (m.kind == DSVMI_FRAME_WRITE) {
    std::vector<uint8_t> payload(m.length);
    ModelPayload(seq, payload.data(), payload.size());
    sc.Build(payload.data(), payload.size(), rng);
    return dsvmi_ring_produce(p, DSVMI_FRAME_WRITE, m.offset, m.length, sc.iov.data(),
                              static_cast<int>(sc.iov.size()), sc.skip);
  }
  return dsvmi_ring_produce(p, static_cast<dsvmi_frame_kind>(m.kind), m.offset, m.length, nullptr, 0, 0);
}

void ExpectModelFrame(const FrameView& v, uint64_t max_large) {
  auto m = Model(v.seq, max_large);
  ASSERT_EQ(static_cast<int>(v.kind), m.kind) << "seq " << v.seq;
  ASSERT_EQ(v.offset, m.offset) << "seq " << v.seq;
  ASSERT_EQ(v.length, m.length) << "seq " << v.seq;
  if (m.kind == DSVMI_FRAME_WRITE) {
    std::vector<uint8_t> want(m.length);
    ModelPayload(v.seq, want.data(), want.size());
    ASSERT_EQ(v.payload_len, m.length);
    ASSERT_EQ(0, test::BytesDiffer(v.payload, want.data(), want.size())) << "payload of seq " << v.seq;
  } else {
    ASSERT_EQ(v.payload_len, 0u);
  }
}

TEST(FrameBuilder, RegionBoundIsEnoughAndNothingOutsideIsWritten) {
  ring::InPlaceFrameBuilder builder(1 << 20);
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 300; n++) sizes.push_back(n);
  for (size_t n : {4095, 4096, 4097, 65536, 1 << 19}) sizes.push_back(n);
  std::mt19937_64 rng(1);
  for (int kind = 1; kind <= 5; kind++) {
    for (size_t n : sizes) {
      const bool write = kind == DSVMI_FRAME_WRITE;
      if (!write && n > 0) break;
      const size_t region = ring::FrameRegionBound(n);
      std::vector<uint64_t> mem((region + 2 * 64) / 8 + 1, 0xa5a5a5a5a5a5a5a5ull);
      uint8_t* base = reinterpret_cast<uint8_t*>(mem.data()) + 64;
      std::vector<uint8_t> payload(n);
      ModelPayload(n, payload.data(), n);
      test::Scatter sc;
      sc.Build(payload.data(), n, rng);
      ring::FrameFields f;
      f.seq = UINT64_MAX;  // the largest values: every field present
      f.kind = static_cast<uint8_t>(kind);
      f.offset = f.length = f.timestamp_ns = UINT64_MAX;
      if (write) f.length = n;
      if (kind == 5) {
        f.lost_frames = 1;
        f.first_lost_seq = UINT64_MAX;
        f.lost_bytes = UINT64_MAX;
      }
      size_t got = builder.Build(base, region, f, write, sc.iov.data(), static_cast<int>(sc.iov.size()), sc.skip, n);
      ASSERT_NE(got, 0u) << "kind " << kind << " payload " << n << " outgrew its bound";
      ASSERT_EQ(got % 8, 0u);
      for (size_t i = 0; i < 64; i++) {
        ASSERT_EQ(base[-1 - static_cast<ptrdiff_t>(i)], 0xa5) << "wrote below the region";
        ASSERT_EQ(base[region + i], 0xa5) << "wrote above the region";
      }
      FrameView v;
      std::string err;
      ASSERT_TRUE(DecodeFrame(base + region - got, got, &v, &err)) << err;
      EXPECT_EQ(v.seq, UINT64_MAX);
      EXPECT_EQ(static_cast<int>(v.kind), kind);
      if (write) {
        ASSERT_EQ(v.payload_len, n);
        EXPECT_EQ(0, test::BytesDiffer(v.payload, payload.data(), n));
      }
    }
  }
}

TEST(Ring, RoundTripEveryKindWithScatteredPayloads) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 1 << 20);
  auto p = OpenProducer(path.path());
  std::mt19937_64 rng(7);
  test::Scatter sc;
  constexpr uint64_t kFrames = 3000;
  uint64_t next = 0, last_ts = 0;
  std::vector<FrameView> views(64);
  for (uint64_t seq = 0; seq < kFrames; seq++) {
    ASSERT_EQ(ProduceModel(p.get(), seq, 100000, rng, sc), 1) << "seq " << seq;
    size_t n = c->Dequeue(views.data(), views.size());
    for (size_t i = 0; i < n; i++) {
      ASSERT_EQ(views[i].seq, next++);
      ExpectModelFrame(views[i], 100000);
      ASSERT_GE(views[i].timestamp_ns, last_ts);
      last_ts = views[i].timestamp_ns;
    }
    if (n) {
      ASSERT_TRUE(c->Release(views[n - 1]));
    }
  }
  EXPECT_EQ(next, kFrames);
  auto s = c->stats();
  EXPECT_EQ(s.delivered_frames, kFrames);
  EXPECT_EQ(s.produced_frames, kFrames);
  EXPECT_EQ(s.dropped_frames, 0u);
  EXPECT_EQ(s.invalid_records, 0u);
  EXPECT_EQ(c->error_count(), 0u) << c->last_error();
}

TEST(Ring, FramesStraddlingTheWrapAreContiguous) {
  TempRingPath path;
  constexpr uint64_t kCap = 64 * 1024;
  auto c = CreateRing(path.path(), kCap);
  auto p = OpenProducer(path.path());
  int straddled = 0;
  FrameView v;
  for (uint64_t seq = 0; seq < 2000; seq++) {
    const size_t n = 1000 + (seq * 977) % 9000;  // record sizes walk across the end
    std::vector<uint8_t> payload(n);
    ModelPayload(seq, payload.data(), n);
    struct iovec iov = {payload.data(), n};
    ASSERT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, seq * 4096, n, &iov, 1, 0), 1);
    ASSERT_EQ(c->Dequeue(&v, 1), 1u);
    ASSERT_EQ(v.seq, seq);
    ASSERT_EQ(v.payload_len, n);
    ASSERT_EQ(0, test::BytesDiffer(v.payload, payload.data(), n)) << "seq " << seq;
    const uint64_t start = v.ring_end - (v.frame + v.frame_len - v.payload) - n;  // payload start index
    if ((start & (kCap - 1)) + n > kCap) straddled++;
    ASSERT_TRUE(c->Release(v));
  }
  EXPECT_GT(straddled, 10) << "the test did not exercise the wrap";
}

TEST(Ring, FullRingDropsAndReportsTheExactLostRange) {
  TempRingPath path;
  constexpr uint64_t kCap = 64 * 1024;
  auto c = CreateRing(path.path(), kCap);
  auto p = OpenProducer(path.path());
  std::vector<uint8_t> payload(4096, 0x5a);
  struct iovec iov = {payload.data(), payload.size()};
  // A record is the 8-byte header + payload (rounded to 8) + the frame bound,
  // rounded up to 64 (docs/ring.md). Fill 64 KiB exactly: as many 4 KiB
  // writes as fit, then one write sized to the remainder.
  auto record_bytes = [](uint64_t n) { return ring::AlignUp(8 + ring::FrameRegionBound(n), 64); };
  const uint64_t full = kCap / record_bytes(4096);
  const uint64_t rest = kCap - full * record_bytes(4096);
  ASSERT_GE(rest, record_bytes(0)) << "pick another payload size for this test";
  const uint64_t filler = rest - 8 - ring::kFrameOverheadBound;
  ASSERT_EQ(record_bytes(filler), rest);
  uint64_t seq = 0;
  for (; seq < full; seq++) {
    ASSERT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, seq * 8192, 4096, &iov, 1, 0), 1);
  }
  iov.iov_len = filler;
  ASSERT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 0, filler, &iov, 1, 0), 1);
  iov.iov_len = 4096;
  seq++;
  const uint64_t enqueued = seq;
  const uint64_t first_lost = seq;
  // Drops: a write, a write far below, a flush, a discard far above.
  EXPECT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 8192 * 16, 4096, &iov, 1, 0), 0);
  uint64_t lost_bytes = 4096;
  EXPECT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 100, 4096, &iov, 1, 0), 0);
  lost_bytes += 4096;
  EXPECT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0), 0);
  EXPECT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_DISCARD, 1 << 30, 1 << 20, nullptr, 0, 0), 0);
  lost_bytes += 1 << 20;
  const uint64_t lost_frames = 4;

  // The mirror shows the pending loss before any draining.
  auto s = c->stats();
  ASSERT_TRUE(s.lost_mirror_consistent);
  EXPECT_EQ(s.lost_pending_frames, lost_frames);
  EXPECT_EQ(s.lost_pending_bytes, lost_bytes);
  EXPECT_EQ(s.lost_pending_first_seq, first_lost);
  EXPECT_EQ(s.lost_pending_offset, 100u);
  EXPECT_EQ(s.lost_pending_end, (1u << 30) + (1u << 20));
  EXPECT_EQ(s.dropped_frames, lost_frames);
  RingSnapshot snap;
  std::string err;
  ASSERT_TRUE(InspectRing(path.path(), &snap, &err)) << err;
  EXPECT_TRUE(snap.geometry_ok);
  EXPECT_EQ(snap.producer_index - snap.consumer_index, 64u * 1024);
  EXPECT_TRUE(snap.indices_ok);
  std::vector<FrameView> views(64);
  size_t n = c->Dequeue(views.data(), views.size());
  ASSERT_EQ(n, enqueued);
  c->ReleaseAll();

  // Space is back: the next produce first emits the Lost frame.
  ASSERT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 7 * 4096, 4096, &iov, 1, 0), 1);
  n = c->Dequeue(views.data(), views.size());
  ASSERT_EQ(n, 2u);
  const FrameView& lost = views[0];
  EXPECT_EQ(lost.kind, FrameKind::kLost);
  EXPECT_EQ(lost.first_lost_seq, first_lost);
  EXPECT_EQ(lost.lost_frames, lost_frames);
  EXPECT_EQ(lost.seq, first_lost + lost_frames - 1);
  EXPECT_EQ(lost.lost_bytes, lost_bytes);
  EXPECT_EQ(lost.offset, 100u);
  EXPECT_EQ(lost.offset + lost.length, (1u << 30) + (1u << 20));
  EXPECT_EQ(views[1].kind, FrameKind::kWrite);
  EXPECT_EQ(views[1].seq, first_lost + lost_frames);
  c->ReleaseAll();
  s = c->stats();
  EXPECT_EQ(s.lost_pending_frames, 0u);
  EXPECT_EQ(s.produced_frames, enqueued + lost_frames + 1);
  EXPECT_EQ(s.delivered_frames + s.dropped_frames, s.produced_frames);
  EXPECT_EQ(s.lost_frames, lost_frames);
  dsvmi_ring_producer_stats ps;
  dsvmi_ring_producer_get_stats(p.get(), &ps);
  EXPECT_EQ(ps.produced_frames, enqueued + lost_frames + 1);
  EXPECT_EQ(ps.dropped_frames, lost_frames);
  EXPECT_EQ(ps.dropped_bytes, lost_bytes);
  EXPECT_EQ(ps.lost_records, 1u);
}

// A write the layer below failed (QEMU filter, issue #4): no frame, but one
// produced + one dropped sequence number whose range joins the pending Lost
// record like any drop, and goes out in band with the next frame.
TEST(Ring, RecordLostIsADropWhoseRangeJoinsTheLostRecord) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 64 * 1024);
  auto p = OpenProducer(path.path());
  std::vector<uint8_t> payload(4096, 0x33);
  struct iovec iov = {payload.data(), payload.size()};
  ASSERT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 8192, 4096, &iov, 1, 0), 1);  // seq 0
  dsvmi_ring_record_lost(p.get(), 1 << 20, 65536);                                        // seq 1
  dsvmi_ring_record_lost(p.get(), 4096, 512);                                             // seq 2
  dsvmi_ring_record_lost(nullptr, 0, 4096);  // no-op

  auto s = c->stats();
  ASSERT_TRUE(s.lost_mirror_consistent);
  EXPECT_EQ(s.lost_pending_frames, 2u);
  EXPECT_EQ(s.lost_pending_bytes, 65536u + 512u);
  EXPECT_EQ(s.lost_pending_first_seq, 1u);
  EXPECT_EQ(s.lost_pending_offset, 4096u);
  EXPECT_EQ(s.lost_pending_end, (1u << 20) + 65536u);
  dsvmi_ring_producer_stats ps;
  dsvmi_ring_producer_get_stats(p.get(), &ps);
  EXPECT_EQ(ps.produced_frames, 3u);
  EXPECT_EQ(ps.produced_bytes, 4096u + 65536u + 512u);
  EXPECT_EQ(ps.dropped_frames, 2u);
  EXPECT_EQ(ps.dropped_bytes, 65536u + 512u);

  // The next frame carries the Lost record in front of it.
  ASSERT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0), 1);  // seq 3
  FrameView v[8];
  ASSERT_EQ(c->Dequeue(v, 8), 3u);
  EXPECT_EQ(v[0].kind, FrameKind::kWrite);
  EXPECT_EQ(v[0].seq, 0u);
  EXPECT_EQ(v[1].kind, FrameKind::kLost);
  EXPECT_EQ(v[1].seq, 2u);
  EXPECT_EQ(v[1].first_lost_seq, 1u);
  EXPECT_EQ(v[1].lost_frames, 2u);
  EXPECT_EQ(v[1].lost_bytes, 65536u + 512u);
  EXPECT_EQ(v[1].offset, 4096u);
  EXPECT_EQ(v[1].offset + v[1].length, (1u << 20) + 65536u);
  EXPECT_EQ(v[2].kind, FrameKind::kFlush);
  EXPECT_EQ(v[2].seq, 3u);
  c->ReleaseAll();
  s = c->stats();
  EXPECT_EQ(s.lost_pending_frames, 0u);
  EXPECT_EQ(s.delivered_frames, 2u);
  EXPECT_EQ(s.lost_frames, 2u);
  dsvmi_ring_producer_get_stats(p.get(), &ps);
  EXPECT_EQ(ps.produced_frames, 4u);
  EXPECT_EQ(ps.lost_records, 1u);
  EXPECT_EQ(s.delivered_frames + ps.dropped_frames, ps.produced_frames);
}

TEST(Ring, OversizeAndMalformedRequestsAreCountedDrops) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 64 * 1024);
  auto p = OpenProducer(path.path());
  const uint64_t max = c->geometry().max_payload;
  std::vector<uint8_t> big(max + 1, 1);
  struct iovec iov = {big.data(), big.size()};
  EXPECT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 0, max + 1, &iov, 1, 0), 0) << "larger than the ring";
  EXPECT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 0, 10, &iov, 1, big.size() - 5), 0) << "iov too short";
  EXPECT_EQ(dsvmi_ring_produce(p.get(), static_cast<dsvmi_frame_kind>(9), 0, 10, nullptr, 0, 0), 0) << "bad kind";
  EXPECT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_WRITE, 0, max, &iov, 1, 1), 1) << "the largest payload fits";
  FrameView v[4];
  ASSERT_EQ(c->Dequeue(v, 4), 2u);
  EXPECT_EQ(v[0].kind, FrameKind::kLost);
  EXPECT_EQ(v[0].lost_frames, 3u);
  EXPECT_EQ(v[1].payload_len, max);
  EXPECT_EQ(dsvmi_ring_produce(nullptr, DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0), 0);
}

TEST(Ring, ConsumerRestartContinuesWhereTheLastReleaseStopped) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 1 << 20);
  auto p = OpenProducer(path.path());
  std::mt19937_64 rng(3);
  test::Scatter sc;
  for (uint64_t seq = 0; seq < 100; seq++) ASSERT_EQ(ProduceModel(p.get(), seq, 10000, rng, sc), 1);
  std::vector<FrameView> views(40);
  ASSERT_EQ(c->Dequeue(views.data(), 40), 40u);
  ASSERT_TRUE(c->Release(views[29]));  // 30 released, 10 dequeued but not released

  std::string err;
  EXPECT_FALSE(RingConsumer::Attach(path.path(), &err)) << "a second live consumer must be refused";
  EXPECT_NE(err.find("already has a consumer"), std::string::npos) << err;
  char perr[256];
  EXPECT_EQ(dsvmi_ring_producer_open(path.path().c_str(), perr, sizeof perr), nullptr);
  EXPECT_NE(std::string(perr).find("already has a producer"), std::string::npos) << perr;

  c.reset();  // the consumer dies
  for (uint64_t seq = 100; seq < 150; seq++) ASSERT_EQ(ProduceModel(p.get(), seq, 10000, rng, sc), 1);
  c = RingConsumer::Attach(path.path(), &err);
  ASSERT_TRUE(c) << err;
  uint64_t next = 30;
  views.resize(64);
  while (size_t n = c->Dequeue(views.data(), views.size())) {
    for (size_t i = 0; i < n; i++) {
      ASSERT_EQ(views[i].seq, next++);
      ExpectModelFrame(views[i], 10000);
    }
    c->ReleaseAll();
  }
  EXPECT_EQ(next, 150u);
  // 40 counted by the first consumer + 120 by the second (10 delivered twice).
  EXPECT_EQ(c->stats().delivered_frames, 160u);
}

TEST(Ring, IncompatibleRingsAreRefusedWithAReason) {
  struct Case {
    const char* what;
    size_t field_offset;
    uint64_t value;
    size_t width;
    const char* expect;
  };
  const Case cases[] = {
      {"magic", offsetof(ring::Geometry, magic), 0x1234, 8, "bad magic"},
      {"version", offsetof(ring::Geometry, layout_version), 3, 4, "layout version 3"},
      {"capacity", offsetof(ring::Geometry, capacity), 1 << 17, 8, "header says"},
      {"capacity not pow2", offsetof(ring::Geometry, capacity), 3 << 16, 8, "bad capacity"},
      {"max record", offsetof(ring::Geometry, max_record), 1 << 30, 8, "bad max record"},
  };
  for (const Case& k : cases) {
    TempRingPath path;
    auto c = CreateRing(path.path(), 64 * 1024);
    c.reset();
    int fd = open(path.path().c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, &k.value, k.width, static_cast<off_t>(k.field_offset)), static_cast<ssize_t>(k.width));
    close(fd);
    char err[256] = "";
    EXPECT_EQ(dsvmi_ring_producer_open(path.path().c_str(), err, sizeof err), nullptr) << k.what;
    EXPECT_NE(std::string(err).find(k.expect), std::string::npos) << k.what << ": " << err;
    std::string cerr;
    EXPECT_FALSE(RingConsumer::Attach(path.path(), &cerr)) << k.what;
    EXPECT_NE(cerr.find(k.expect), std::string::npos) << k.what << ": " << cerr;
    RingSnapshot snap;
    ASSERT_TRUE(InspectRing(path.path(), &snap, &cerr));
    EXPECT_FALSE(snap.geometry_ok);
    EXPECT_NE(snap.geometry_error.find(k.expect), std::string::npos) << snap.geometry_error;
  }
  char err[256] = "";
  EXPECT_EQ(dsvmi_ring_producer_open("/dev/shm/dsvmi-no-such-ring", err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("No such file"), std::string::npos) << err;
  std::string cerr;
  TempRingPath path;
  auto c = CreateRing(path.path(), 64 * 1024);
  EXPECT_FALSE(RingConsumer::Create(path.path(), 64 * 1024, &cerr)) << "O_EXCL";
  EXPECT_FALSE(RingConsumer::Create(path.path() + "x", 100000, &cerr)) << "not a power of two";
  EXPECT_NE(cerr.find("bad capacity"), std::string::npos) << cerr;
}

TEST(Ring, DoorbellWakesASleepingConsumerEveryTime) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 1 << 20);
  auto p = OpenProducer(path.path());
  constexpr int kRounds = 2000;
  std::atomic<int> consumed{0};
  std::thread consumer([&] {
    FrameView v;
    for (int i = 0; i < kRounds; i++) {
      while (c->Dequeue(&v, 1) == 0) c->Wait(-1);  // no timeout: each sleep ends by the 1 ms tick
      EXPECT_EQ(v.seq, static_cast<uint64_t>(i));
      c->Release(v);
      consumed.store(i + 1, std::memory_order_release);
    }
  });
  for (int i = 0; i < kRounds; i++) {
    // Ping-pong: wait until the consumer took the previous frame, then let it
    // fall asleep sometimes before producing.
    while (consumed.load(std::memory_order_acquire) < i) std::this_thread::yield();
    if (i % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    ASSERT_EQ(dsvmi_ring_produce(p.get(), DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0), 1);
  }
  consumer.join();
}

// The doorbell word as the header shows it now (ring_inspect: a read-only
// mapping of its own).
uint32_t DoorbellWord(const std::string& path) {
  RingSnapshot snap;
  std::string err;
  EXPECT_TRUE(InspectRing(path, &snap, &err)) << err;
  return snap.consumer_sleeping;
}

// The coalesced doorbell's early wake: with the consumer's tick disabled
// (it sleeps until woken), frames below the fill threshold leave it asleep
// and the producer must wake it once the ring is a quarter full. A lost
// wake-up hangs (ctest fails it): the producer keeps producing (and, once
// the ring is full, dropping) and looks at the doorbell after each call.
TEST(Ring, FillThresholdWakesASleepingConsumer) {
  TempRingPath path;
  constexpr uint64_t kCap = 1 << 20;
  auto c = CreateRing(path.path(), kCap);
  std::string err;
  auto p = ring::RingProducer::Open(path.path(), &err);
  ASSERT_TRUE(p) << err;
  c->set_wake_interval_ns(-1);
  std::atomic<bool> woke{false};
  std::thread consumer([&] {
    EXPECT_TRUE(c->Wait(-1));
    woke.store(true, std::memory_order_release);
  });
  // Until the consumer is really asleep (its flag is up).
  while (DoorbellWord(path.path()) == ring::kDoorbellAwake) std::this_thread::yield();
  std::vector<uint8_t> payload(4096, 7);
  struct iovec iov = {payload.data(), payload.size()};
  uint64_t produced = 0;
  while (!woke.load(std::memory_order_acquire)) {
    p->Produce(DSVMI_FRAME_WRITE, produced * 4096, 4096, &iov, 1, 0);
    produced++;
    std::this_thread::yield();
  }
  consumer.join();
  EXPECT_GE(p->doorbell_wakes(), 1u);
  // It was not woken for the first frames: the ring had reached the threshold.
  const uint64_t record = ring::AlignUp(8 + ring::FrameRegionBound(4096), 64);
  EXPECT_GE(produced * record, kCap / ring::kDoorbellWakeFillDivisor);
}

// The idle state: a consumer that found nothing for a few ticks stores
// kDoorbellIdle, and the producer must wake it on the very next frame,
// however empty the ring. The idle slices are unbounded here, so only that
// wake (or the one short tick right after the consumer went idle) can end
// its Wait; and the producer sees the word, so it wakes exactly once.
TEST(Ring, IdleConsumerIsWokenByTheNextFrame) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 1 << 20);
  std::string err;
  auto p = ring::RingProducer::Open(path.path(), &err);
  ASSERT_TRUE(p) << err;
  c->set_idle_after_ticks(2);
  c->set_idle_interval_ns(-1);
  std::thread consumer([&] { EXPECT_TRUE(c->Wait(-1)); });
  while (DoorbellWord(path.path()) != ring::kDoorbellIdle) std::this_thread::yield();
  ASSERT_TRUE(p->Produce(DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0));
  consumer.join();
  EXPECT_EQ(p->doorbell_wakes(), 1u);
  EXPECT_EQ(DoorbellWord(path.path()), ring::kDoorbellAwake);
  FrameView v;
  ASSERT_EQ(c->Dequeue(&v, 1), 1u);
  EXPECT_EQ(v.seq, 0u);
  EXPECT_EQ(v.kind, FrameKind::kFlush);
}

// Many idle -> busy transitions, idle slices unbounded. Even rounds produce
// only once the consumer has begun a long idle sleep (idle_sleeps() moved):
// then nothing but the producer's wake can end it, so a lost wake hangs
// (ctest fails it). Odd rounds produce as soon as the word says idle, i.e.
// usually during the first, short, tick: the race the short tick covers.
TEST(Ring, IdleConsumerIsWokenEveryTime) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 1 << 20);
  std::string err;
  auto p = ring::RingProducer::Open(path.path(), &err);
  ASSERT_TRUE(p) << err;
  c->set_idle_after_ticks(1);
  c->set_idle_interval_ns(-1);
  constexpr int kRounds = 400;
  std::atomic<int> consumed{0};
  std::atomic<uint64_t> sleeps_before{0};  // idle_sleeps() when the round began
  std::thread consumer([&] {
    FrameView v;
    for (int i = 0; i < kRounds; i++) {
      while (c->Dequeue(&v, 1) == 0) c->Wait(-1);
      EXPECT_EQ(v.seq, static_cast<uint64_t>(i));
      c->Release(v);
      sleeps_before.store(c->idle_sleeps(), std::memory_order_relaxed);
      consumed.store(i + 1, std::memory_order_release);
    }
  });
  for (int i = 0; i < kRounds; i++) {
    while (consumed.load(std::memory_order_acquire) < i) std::this_thread::yield();
    if (i % 2 == 0) {
      const uint64_t before = sleeps_before.load(std::memory_order_relaxed);
      while (c->idle_sleeps() == before) std::this_thread::yield();
    } else {
      while (DoorbellWord(path.path()) != ring::kDoorbellIdle) std::this_thread::yield();
    }
    ASSERT_TRUE(p->Produce(DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0));
  }
  consumer.join();
  EXPECT_GE(c->idle_sleeps(), static_cast<uint64_t>(kRounds / 2));
  // One wake per round at most; the even rounds all needed theirs.
  EXPECT_LE(p->doorbell_wakes(), static_cast<uint64_t>(kRounds));
  EXPECT_GE(p->doorbell_wakes(), static_cast<uint64_t>(kRounds / 2));
}

// No producer attached yet (the engine starts before QEMU): the consumer
// still goes idle, and a producer that attaches while it sleeps wakes it.
TEST(Ring, IdleConsumerIsWokenByAProducerThatAttachesLater) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 1 << 20);
  c->set_idle_after_ticks(0);
  c->set_idle_interval_ns(-1);
  std::thread consumer([&] { EXPECT_TRUE(c->Wait(-1)); });
  while (c->idle_sleeps() == 0) std::this_thread::yield();
  std::string err;
  auto p = ring::RingProducer::Open(path.path(), &err);
  ASSERT_TRUE(p) << err;
  ASSERT_TRUE(p->Produce(DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0));
  consumer.join();
  EXPECT_EQ(p->doorbell_wakes(), 1u);
}

// A producer from before the idle state (an older libdsvmi-producer.so that
// QEMU still has loaded) holds the producer lock but not the idle-wake lock,
// and would leave an idle consumer asleep for a whole slice: beside it the
// consumer only naps, i.e. keeps the 1 ms tick. Simulated with the bare
// producer lock.
TEST(Ring, ConsumerOnlyNapsBesideAProducerWithoutTheIdleWake) {
  TempRingPath path;
  auto c = CreateRing(path.path(), 1 << 20);
  c->set_idle_after_ticks(0);
  const int fd = open(path.path().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string err;
  ASSERT_TRUE(ring::TryLockRole(fd, ring::Role::kProducer, &err)) << err;
  EXPECT_FALSE(c->Wait(20'000'000));
  EXPECT_EQ(c->idle_sleeps(), 0u);
  EXPECT_EQ(DoorbellWord(path.path()), ring::kDoorbellAwake);
  // The same answer through a third, lock-less open file; then the real
  // producer, which advertises the idle wake.
  const int observer = open(path.path().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(observer, 0);
  EXPECT_FALSE(ring::ProducerWakesIdle(observer));
  close(fd);
  EXPECT_TRUE(ring::ProducerWakesIdle(observer)) << "no producer at all";
  auto p = ring::RingProducer::Open(path.path(), &err);
  ASSERT_TRUE(p) << err;
  EXPECT_TRUE(ring::ProducerWakesIdle(observer));
  close(observer);
}

TEST(FrameDecoder, RejectsGarbageWithAReason) {
  alignas(8) uint8_t buf[512];
  FrameView v;
  std::string err;
  std::memset(buf, 0, sizeof buf);
  EXPECT_FALSE(DecodeFrame(buf, 8, &v, &err));
  EXPECT_NE(err.find("bad length"), std::string::npos) << err;
  EXPECT_FALSE(DecodeFrame(buf, 64, &v, &err));
  EXPECT_FALSE(err.empty());
  EXPECT_FALSE(DecodeFrame(buf + 4, 64, &v, &err));
  EXPECT_NE(err.find("aligned"), std::string::npos) << err;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 100000; i++) {
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    size_t len = 16 + 8 * (rng() % 60);
    (void)DecodeFrame(buf, len, &v, &err);  // must not crash (ASan run)
  }
}

}  // namespace
}  // namespace dsvmi

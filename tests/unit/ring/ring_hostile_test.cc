// Hostile peers: the test maps the ring file itself and scribbles on the
// header, the indices and the frames, playing a compromised producer (QEMU
// after a guest escape) or a broken consumer. The other side must report the
// problem, count it, and keep working; run under ASan (scripts/test.sh) this
// also shows no access leaves the mappings.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <thread>

#include "dsvmi/ring.h"
#include "dsvmi/ring_consumer.h"
#include "dsvmi/ring_inspect.h"
#include "producer.h"
#include "ring_layout.h"
#include "ring_test_util.h"

namespace dsvmi {
namespace {

using ring::Header;
using ring::RecordHeader;

constexpr uint64_t kCap = 64 * 1024;

// The scribbler's own view of the ring file: header + one data mapping.
class Scribbler {
 public:
  explicit Scribbler(const std::string& path) {
    int fd = open(path.c_str(), O_RDWR);
    EXPECT_GE(fd, 0);
    void* m = mmap(nullptr, ring::kHeaderBytes + kCap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    EXPECT_NE(m, MAP_FAILED);
    base_ = static_cast<uint8_t*>(m);
  }
  ~Scribbler() { munmap(base_, ring::kHeaderBytes + kCap); }
  Header* hdr() { return reinterpret_cast<Header*>(base_); }
  uint8_t* data() { return base_ + ring::kHeaderBytes; }
  RecordHeader* record_at(uint64_t index) { return reinterpret_cast<RecordHeader*>(data() + (index & (kCap - 1))); }

 private:
  uint8_t* base_ = nullptr;
};

struct Fixture {
  test::TempRingPath path;
  std::unique_ptr<RingConsumer> c;
  std::unique_ptr<ring::RingProducer> p;
  std::unique_ptr<Scribbler> s;
  std::vector<uint8_t> payload = std::vector<uint8_t>(1000, 0x42);

  Fixture() {
    std::string err;
    c = RingConsumer::Create(path.path(), kCap, &err);
    EXPECT_TRUE(c) << err;
    p = ring::RingProducer::Open(path.path(), &err);
    EXPECT_TRUE(p) << err;
    s = std::make_unique<Scribbler>(path.path());
  }
  bool Write(uint64_t offset) {
    struct iovec iov = {payload.data(), payload.size()};
    return p->Produce(DSVMI_FRAME_WRITE, offset, payload.size(), &iov, 1, 0);
  }
  std::vector<FrameView> DrainAll() {
    std::vector<FrameView> out(64);
    size_t n = c->Dequeue(out.data(), out.size());
    out.resize(n);
    c->ReleaseAll();
    return out;
  }
};

TEST(HostileProducer, BrokenRecordHeaderResyncsToTheProducerIndex) {
  Fixture f;
  for (int i = 0; i < 3; i++) ASSERT_TRUE(f.Write(i * 4096));
  const uint32_t first_len = f.s->record_at(0)->record_len;
  f.s->record_at(first_len)->record_len = 0x7fffffc0;  // second record claims 2 GiB
  auto got = f.DrainAll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 0u);
  EXPECT_NE(f.c->last_error().find("bad header"), std::string::npos) << f.c->last_error();
  EXPECT_EQ(f.c->stats().invalid_records, 1u);
  // The stream continues after the skipped region.
  for (int i = 3; i < 6; i++) ASSERT_TRUE(f.Write(i * 4096));
  got = f.DrainAll();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].seq, 3u);
  EXPECT_EQ(got[2].seq, 5u);
}

TEST(HostileProducer, CorruptFramesAreSkippedOneByOne) {
  Fixture f;
  for (int i = 0; i < 4; i++) ASSERT_TRUE(f.Write(i * 4096));
  // Frame 1: wrong file identifier. Frame 2: payload length overruns the frame.
  uint64_t idx = 0;
  std::vector<uint64_t> starts;
  for (int i = 0; i < 4; i++) {
    starts.push_back(idx);
    idx += f.s->record_at(idx)->record_len;
  }
  auto frame_of = [&](int i) {
    RecordHeader* rh = f.s->record_at(starts[i]);
    return reinterpret_cast<uint8_t*>(rh) + rh->record_len - rh->frame_len;
  };
  std::memcpy(frame_of(1) + 4, "EVIL", 4);
  // The payload vector's length field (1000) sits right before the payload
  // bytes (0x42...).
  uint8_t* fr2 = frame_of(2);
  const uint8_t pattern[8] = {0xe8, 0x03, 0, 0, 0x42, 0x42, 0x42, 0x42};
  uint8_t* pos = static_cast<uint8_t*>(memmem(fr2, 256, pattern, sizeof pattern));
  ASSERT_NE(pos, nullptr);
  const uint32_t huge = 1u << 30;
  std::memcpy(pos, &huge, 4);
  auto got = f.DrainAll();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].seq, 0u);
  EXPECT_EQ(got[1].seq, 3u);
  EXPECT_EQ(f.c->stats().invalid_records, 2u);
  EXPECT_EQ(f.c->error_count(), 2u);
  EXPECT_NE(f.c->last_error().find("overruns"), std::string::npos) << f.c->last_error();
}

TEST(HostileProducer, SequenceNumbersMustIncrease) {
  Fixture f;
  ASSERT_TRUE(f.Write(0));
  ASSERT_EQ(f.DrainAll().size(), 1u);
  // A producer restarted with scribbled counters starts its sequence at 0 again.
  f.p.reset();
  f.s->hdr()->producer_stats.produced_frames.store(0);
  std::string err;
  f.p = ring::RingProducer::Open(f.path.path(), &err);
  ASSERT_TRUE(f.p) << err;
  ASSERT_TRUE(f.Write(0));
  EXPECT_EQ(f.DrainAll().size(), 0u);
  EXPECT_NE(f.c->last_error().find("does not follow"), std::string::npos) << f.c->last_error();
}

// A producer index behind what the consumer read, or not record-aligned, is
// never followed: the consumer reads nothing until the producer republishes.
TEST(HostileProducer, OutOfRangeProducerIndexIsIgnoredUntilSane) {
  Fixture f;
  ASSERT_TRUE(f.Write(0));
  auto& prod = f.s->hdr()->producer.prod_index;
  const uint64_t real = prod.load();
  for (uint64_t bad : {real + kCap + 65, real - 64 - kCap * 3, uint64_t{0} - 64}) {
    prod.store(bad);
    EXPECT_EQ(f.DrainAll().size(), 0u);
    EXPECT_NE(f.c->last_error().find("producer index"), std::string::npos) << f.c->last_error();
  }
  EXPECT_EQ(f.c->stats().bad_producer_index, 3u);
  ASSERT_TRUE(f.Write(4096));  // the producer republishes its private index
  auto got = f.DrainAll();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].seq, 1u);
}

// A forged producer index more than a ring ahead: a consumer that holds
// nothing continues from it, and the producer, now behind the consumer's
// index, continues from that. Without both steps each side would refuse the
// other's index forever and the disk's capture would stay dead.
TEST(HostileProducer, ForgedIndexFarAheadIsFollowedAndBothSidesRecover) {
  Fixture f;
  ASSERT_TRUE(f.Write(0));
  ASSERT_EQ(f.DrainAll().size(), 1u);
  auto& prod = f.s->hdr()->producer.prod_index;
  const uint64_t forged = prod.load() + 3 * kCap;
  prod.store(forged);
  EXPECT_EQ(f.DrainAll().size(), 0u);
  EXPECT_NE(f.c->last_error().find("continuing from it"), std::string::npos) << f.c->last_error();
  EXPECT_EQ(f.s->hdr()->consumer.cons_index.load(), forged);
  // The producer reads the consumer index only when its cached room runs
  // out, so up to a ring of frames goes to its old place first (unseen).
  std::vector<FrameView> got;
  int i = 1;
  for (; i <= 1000 && got.empty(); i++) {
    ASSERT_TRUE(f.Write(i * 4096)) << "write " << i;
    got = f.DrainAll();
  }
  ASSERT_FALSE(got.empty()) << "no frame got through after 1000 writes";
  EXPECT_LT(i, int(kCap / 1024) + 3) << "recovery took more than a ring of frames";
  EXPECT_EQ(got.back().kind, FrameKind::kWrite);
  EXPECT_EQ(got.back().offset, uint64_t(i - 1) * 4096);
  ASSERT_TRUE(f.Write(1));
  got = f.DrainAll();
  ASSERT_EQ(got.size(), 1u) << "after recovery every frame arrives";
  EXPECT_EQ(got[0].offset, 1u);
}

// A consumer index behind the producer's by more than the ring, or not
// record-aligned, never makes the producer overwrite what may be unread.
TEST(HostileConsumer, OutOfRangeConsumerIndexMakesTheProducerDropNotOverrun) {
  Fixture f;
  while (f.Write(0)) {
  }
  // Further drops use the last bytes for Lost frames until not even one fits;
  // then any write needs a fresh consumer index.
  for (int i = 0; i < 8; i++) f.Write(0);
  const uint64_t prod = f.s->hdr()->producer.prod_index.load();
  auto& cons = f.s->hdr()->consumer.cons_index;
  uint64_t before = f.p->stats().bad_consumer_index;
  for (uint64_t bad : {prod + 65, prod - 2 * kCap, prod - kCap - 64, prod - (uint64_t{1} << 62)}) {
    cons.store(bad);
    EXPECT_FALSE(f.Write(0));
    EXPECT_EQ(f.p->stats().bad_consumer_index, ++before);
  }
  EXPECT_EQ(f.s->hdr()->producer.prod_index.load(), prod) << "nothing may be written on a bad consumer index";
  f.DrainAll();  // the consumer republishes its private index
  ASSERT_TRUE(f.Write(0));
  auto got = f.DrainAll();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, FrameKind::kLost);
  EXPECT_GE(got[0].lost_frames, 4u);
  EXPECT_EQ(got[0].seq + 1, got[1].seq);
}

// A forged consumer index ahead of the producer: the producer continues from
// it; the real consumer, which then sees a producer index more than a ring
// ahead while it holds nothing, follows. Frames in between are lost, reported.
TEST(HostileConsumer, ForgedConsumerIndexAheadIsFollowedAndBothSidesRecover) {
  Fixture f;
  while (f.Write(0)) {
  }
  const uint64_t prod = f.s->hdr()->producer.prod_index.load();
  f.s->hdr()->consumer.cons_index.store(prod + 128);
  ASSERT_TRUE(f.Write(4096)) << "the producer continues from the consumer index ahead of it";
  EXPECT_GT(f.s->hdr()->producer.prod_index.load(), prod + 128);
  EXPECT_EQ(f.DrainAll().size(), 0u);
  EXPECT_NE(f.c->last_error().find("continuing from it"), std::string::npos) << f.c->last_error();
  ASSERT_TRUE(f.Write(8192));
  auto got = f.DrainAll();
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back().kind, FrameKind::kWrite);
  EXPECT_EQ(got.back().offset, 8192u);
}

TEST(HostileConsumer, GeometryAndCounterScribblesAfterOpenChangeNothing) {
  Fixture f;
  Header* h = f.s->hdr();
  h->geometry.capacity = 1ull << 40;
  h->geometry.max_record = 1ull << 39;
  h->geometry.magic = 0;
  h->producer_stats.dropped_frames.store(999);
  h->lost.generation.store(1);  // "being written" forever
  h->doorbell.consumer_sleeping.store(1);
  // Doorbell spam: "napping" (1), "idle" (2, wake me on every frame) or a
  // value no consumer stores. Costs the producer a futex wake per frame at
  // most, nothing else: it never blocks.
  const uint32_t spam[] = {1, 2, 0xdeadbeef};
  for (int i = 0; i < 100; i++) {
    ASSERT_TRUE(f.Write(i));
    h->doorbell.consumer_sleeping.store(spam[i % 3]);
    ASSERT_EQ(f.DrainAll().size(), 1u);
  }
  auto st = f.c->stats();
  EXPECT_EQ(st.delivered_frames, 100u);
  // Every frame after a 2 or an unknown value woke (the ring never got near
  // the fill threshold, so a 1 never did).
  EXPECT_EQ(f.p->doorbell_wakes(), 66u);
  EXPECT_FALSE(st.lost_mirror_consistent);
  RingSnapshot snap;
  std::string err;
  ASSERT_TRUE(InspectRing(f.path.path(), &snap, &err)) << err;
  EXPECT_FALSE(snap.geometry_ok);
  EXPECT_NE(snap.geometry_error.find("bad magic"), std::string::npos);
}

// Everything at once, concurrently: a scribbler thread writes random bytes to
// random places in the data area and random values into both indices while a
// producer thread and the consumer run. Nothing may crash or read/write out
// of bounds (ASan); the consumer reports problems.
TEST(HostilePeers, ConcurrentRandomScribblingIsSurvived) {
  Fixture f;
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    std::mt19937_64 rng(11);
    Header* h = f.s->hdr();
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t r = rng();
      switch (r % 64) {
        case 0: h->producer.prod_index.store(rng()); break;
        case 1: h->consumer.cons_index.store(rng()); break;
        case 2: h->producer.prod_index.fetch_add(64 * (r >> 60)); break;
        default: {
          uint8_t* d = f.s->data() + (rng() % kCap);
          size_t n = 1 + (r >> 8) % 16;
          if (d + n > f.s->data() + kCap) n = f.s->data() + kCap - d;
          for (size_t i = 0; i < n; i++) reinterpret_cast<volatile uint8_t*>(d)[i] = static_cast<uint8_t>(rng());
        }
      }
      usleep(20);
    }
  });
  std::thread producer([&] {
    std::mt19937_64 rng(12);
    test::Scatter sc;
    std::vector<uint8_t> payload;
    for (uint64_t seq = 0; !stop.load(std::memory_order_relaxed); seq++) {
      auto m = test::Model(seq, 20000);
      payload.resize(m.kind == DSVMI_FRAME_WRITE ? m.length : 0);
      test::ModelPayload(seq, payload.data(), payload.size());
      sc.Build(payload.data(), payload.size(), rng);
      f.p->Produce(m.kind, m.offset, m.length, sc.iov.data(), static_cast<int>(sc.iov.size()), sc.skip);
    }
  });
  std::vector<FrameView> views(32);
  uint64_t frames = 0, sum = 0;
  // 3 s of scribbling; if no frame got through in that time (the scribbler
  // can keep the indices invalid for a long stretch on a loaded machine),
  // go on until one does, bounded at 30 s: a ring that never recovers still fails.
  const auto start = std::chrono::steady_clock::now();
  auto running = [&] {
    const auto t = std::chrono::steady_clock::now() - start;
    return t < std::chrono::seconds(3) || (frames == 0 && t < std::chrono::seconds(30));
  };
  while (running()) {
    size_t n = f.c->Dequeue(views.data(), views.size());
    for (size_t i = 0; i < n; i++) {
      frames++;
      // Touch every payload byte the view claims: must stay in bounds.
      for (size_t k = 0; k < views[i].payload_len; k++) sum += views[i].payload[k];
      ASSERT_TRUE(views[i].kind != FrameKind::kWrite || views[i].payload_len == views[i].length);
    }
    f.c->ReleaseAll();
  }
  stop.store(true);
  producer.join();
  scribbler.join();
  auto st = f.c->stats();
  std::printf("survived: %llu frames delivered, %llu invalid records, %llu bad producer indices, %llu bad consumer "
              "indices seen by the producer (checksum %llu)\n",
              (unsigned long long)frames, (unsigned long long)st.invalid_records,
              (unsigned long long)st.bad_producer_index, (unsigned long long)f.p->stats().bad_consumer_index,
              (unsigned long long)sum);
  EXPECT_GT(frames, 0u);
  EXPECT_GT(f.c->error_count(), 0u);
  EXPECT_GT(f.p->stats().bad_consumer_index, 0u);
}

}  // namespace
}  // namespace dsvmi

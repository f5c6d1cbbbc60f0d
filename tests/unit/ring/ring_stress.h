// The stress workload shared by the fork and thread variants: a producer
// replaying the reference model (ring_test_util.h) as fast as it can, in
// alternating phases that wait for room (no drops) and that run free (drops),
// and a consumer that checks every frame against the model and accounts for
// every sequence number exactly once.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "dsvmi/ring_consumer.h"
#include "producer.h"
#include "ring_test_util.h"

namespace dsvmi::test {

inline constexpr uint64_t kStressMaxLarge = 2 * 1024 * 1024;
// 8 MiB: the largest record is half the ring, so 2 MiB writes still fit.
inline constexpr uint64_t kStressCapacity = 8 * 1024 * 1024;

inline uint64_t StressFrames(uint64_t dflt) {
  const char* env = std::getenv("DSVMI_RING_STRESS_FRAMES");
  return env ? std::strtoull(env, nullptr, 10) : dflt;
}

// About one request in 500 (not flushes) "fails in the layer below": the
// producer records it with RecordLost instead of producing it.
inline bool ModelChildFails(uint64_t seq) {
  return Model(seq, kStressMaxLarge).kind != DSVMI_FRAME_FLUSH && SplitMix(seq ^ 0xfa11edull) % 500 == 0;
}

// Returns false if the ring cannot be opened (err says why).
inline bool RunStressProducer(const std::string& path, uint64_t frames, dsvmi_ring_producer_stats* out,
                              std::string* err) {
  auto p = ring::RingProducer::Open(path, err);
  if (!p) return false;
  std::mt19937_64 rng(frames * 31 + 17);
  Scatter sc;
  std::vector<uint8_t> payload;
  for (uint64_t seq = 0; seq < frames; seq++) {
    const ModelFrame m = Model(seq, kStressMaxLarge);
    const bool lossless_phase = ((seq >> 15) & 1) == 0;
    const size_t payload_len = m.kind == DSVMI_FRAME_WRITE ? m.length : 0;
    if (m.kind == DSVMI_FRAME_WRITE) {
      payload.resize(m.length);
      ModelPayload(seq, payload.data(), payload.size());
      sc.Build(payload.data(), payload.size(), rng);
    }
    if (ModelChildFails(seq)) {
      // The filter's path for a request the layer below failed: no frame,
      // a dropped sequence number whose range joins the Lost record.
      p->RecordLost(m.offset, m.length);
      continue;
    }
    if (lossless_phase && payload_len <= p->max_payload()) {
      while (!p->HasRoomFor(payload_len)) __builtin_ia32_pause();
    }
    if (m.kind == DSVMI_FRAME_WRITE) {
      p->Produce(m.kind, m.offset, m.length, sc.iov.data(), static_cast<int>(sc.iov.size()), sc.skip);
    } else {
      p->Produce(m.kind, m.offset, m.length, nullptr, 0, 0);
    }
  }
  *out = p->stats();
  return true;
}

// Once per free-running phase (when the sequence passes the middle of the
// phase: seq = 65536 k + 49152), the consumer stops reading until the producer
// reports a drop (at most max_ms): the ring overflows for sure and the Lost
// path runs ~300 times per 20 M frames.
inline void MaybeStall(const RingConsumer& c, uint64_t seq_before, uint64_t seq_after, int max_ms = 50) {
  if (((seq_before + 16384) >> 16) == ((seq_after + 16384) >> 16)) return;
  if (((seq_after >> 15) & 1) == 0) return;  // lossless phase (see RunStressProducer)
  const uint64_t dropped = c.stats().dropped_frames;
  for (int i = 0; i < max_ms && c.stats().dropped_frames == dropped; i++) usleep(1000);
}

// Checks frames in arrival order against the model.
class StressChecker {
 public:
  void OnFrame(const FrameView& v) {
    ASSERT_GE(v.timestamp_ns, last_ts_) << "seq " << v.seq;
    last_ts_ = v.timestamp_ns;
    if (v.kind == FrameKind::kLost) {
      // The gap must start exactly after the last accounted frame.
      ASSERT_EQ(v.first_lost_seq, next_) << "lost range does not start at the gap";
      uint64_t bytes = 0, lo = UINT64_MAX, hi = 0;
      for (uint64_t s = v.first_lost_seq; s <= v.seq; s++) {
        const ModelFrame m = Model(s, kStressMaxLarge);
        bytes += m.length;
        if (m.length) {
          lo = std::min(lo, m.offset);
          hi = std::max(hi, m.offset + m.length);
        }
      }
      ASSERT_EQ(v.lost_bytes, bytes) << "lost seq " << v.first_lost_seq << ".." << v.seq;
      if (hi) {
        ASSERT_EQ(v.offset, lo);
        ASSERT_EQ(v.offset + v.length, hi);
      } else {
        ASSERT_EQ(v.length, 0u);
      }
      lost_frames_ += v.lost_frames;
      lost_records_++;
      next_ = v.seq + 1;
      return;
    }
    ASSERT_EQ(v.seq, next_) << "a gap without a Lost frame";
    ASSERT_FALSE(ModelChildFails(v.seq)) << "a frame for a failed request, seq " << v.seq;
    const ModelFrame m = Model(v.seq, kStressMaxLarge);
    ASSERT_EQ(static_cast<int>(v.kind), m.kind) << "seq " << v.seq;
    ASSERT_EQ(v.offset, m.offset) << "seq " << v.seq;
    ASSERT_EQ(v.length, m.length) << "seq " << v.seq;
    if (m.kind == DSVMI_FRAME_WRITE) {
      want_.resize(m.length);
      ModelPayload(v.seq, want_.data(), want_.size());
      ASSERT_EQ(v.payload_len, m.length);
      ASSERT_EQ(0, BytesDiffer(v.payload, want_.data(), want_.size())) << "payload of seq " << v.seq;
      if (m.length > 1024 * 1024) large_++;
    }
    delivered_++;
    delivered_bytes_ += m.length;
    next_++;
  }

  uint64_t next_seq() const { return next_; }

  // Final accounting once the producer is done and the ring is drained.
  void Finish(const RingConsumer& c, const dsvmi_ring_producer_stats& ps, uint64_t frames) {
    const RingConsumerStats s = c.stats();
    EXPECT_EQ(ps.produced_frames, frames);
    EXPECT_EQ(s.produced_frames, frames);
    // delivered + dropped == produced, from three independent tallies.
    EXPECT_EQ(delivered_ + ps.dropped_frames, frames);
    EXPECT_EQ(s.delivered_frames, delivered_);
    EXPECT_EQ(s.dropped_frames, ps.dropped_frames);
    EXPECT_EQ(s.invalid_records, 0u) << c.last_error();
    EXPECT_EQ(c.error_count(), 0u) << c.last_error();
    // Every sequence number is delivered or inside exactly one lost range;
    // the tail may still be pending in the header's lost mirror.
    ASSERT_TRUE(s.lost_mirror_consistent);
    if (s.lost_pending_frames) {
      EXPECT_EQ(s.lost_pending_first_seq, next_);
      EXPECT_EQ(s.lost_pending_first_seq + s.lost_pending_frames, frames);
    } else {
      EXPECT_EQ(next_, frames);
    }
    EXPECT_EQ(lost_frames_ + s.lost_pending_frames, ps.dropped_frames);
    EXPECT_EQ(lost_records_, ps.lost_records);
    uint64_t total_bytes = 0;
    for (uint64_t q = 0; q < frames; q++) total_bytes += Model(q, kStressMaxLarge).length;
    EXPECT_EQ(ps.produced_bytes, total_bytes);
    EXPECT_EQ(delivered_bytes_ + ps.dropped_bytes, total_bytes);
    std::printf("stress: %llu frames produced, %llu delivered bit-exact (%llu over 1 MiB), %llu dropped in %llu "
                "Lost records, %llu pending at the end\n",
                (unsigned long long)frames, (unsigned long long)delivered_, (unsigned long long)large_,
                (unsigned long long)ps.dropped_frames, (unsigned long long)lost_records_,
                (unsigned long long)s.lost_pending_frames);
  }

 private:
  uint64_t next_ = 0, last_ts_ = 0, delivered_ = 0, delivered_bytes_ = 0, lost_frames_ = 0, lost_records_ = 0;
  uint64_t large_ = 0;
  std::vector<uint8_t> want_;
};

}  // namespace dsvmi::test

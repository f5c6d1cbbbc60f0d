// The producer side of the ring (lives in QEMU behind the C ABI of
// dsvmi/ring.h). Internal: tests and benchmarks use it directly.
//
// Trust: the producer reads exactly one live value written by the consumer,
// the consumer index, and accepts it only inside [prod - capacity, prod]; its
// own index, counters and geometry are private copies. A hostile consumer can
// therefore make it drop frames, never write outside the mapping.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dsvmi/ring.h"
#include "frame_builder.h"
#include "ring_layout.h"

namespace dsvmi::ring {

class RingProducer {
 public:
  static std::unique_ptr<RingProducer> Open(const std::string& path, std::string* err);
  ~RingProducer();
  RingProducer(const RingProducer&) = delete;
  RingProducer& operator=(const RingProducer&) = delete;

  // See dsvmi_ring_produce(). Returns true when enqueued.
  bool Produce(int kind, uint64_t offset, uint64_t length, const struct iovec* iov, int iovcnt, size_t iov_skip);

  // See dsvmi_ring_record_lost(): one produced + one dropped frame whose
  // range joins the pending Lost record.
  void RecordLost(uint64_t offset, uint64_t length);

  // True if a Write frame of payload_len bytes would fit right now (benchmarks
  // use it to wait for room instead of dropping).
  bool HasRoomFor(size_t payload_len);

  // Largest Write payload that can ever fit this ring.
  uint64_t max_payload() const { return max_payload_; }
  const Geometry& geometry() const { return geo_; }
  dsvmi_ring_producer_stats stats() const { return stats_; }
  // Futex wakes issued (tests, benchmarks).
  uint64_t doorbell_wakes() const { return stats_wakes_; }

 private:
  RingProducer() = default;
  static uint64_t RecordBytes(size_t payload_len) {
    return AlignUp(kRecordHeaderBytes + FrameRegionBound(payload_len), kRecordAlign);
  }
  // True when record_len bytes (plus `extra` right after them) are free.
  bool Reserve(uint64_t record_len, uint64_t extra = 0);
  // Builds and publishes one record; false if the builder bound was wrong.
  bool Emit(uint64_t record_len, const FrameFields& f, bool with_payload, const struct iovec* iov, int iovcnt,
            size_t iov_skip, size_t payload_len);
  bool EmitPendingLost();
  void Drop(uint64_t seq, uint64_t offset, uint64_t length);
  void PublishLostMirror();
  __attribute__((noinline, cold)) void RingDoorbell(uint32_t seen);

  int fd_ = -1;  // kept open: it holds the producer's lock on the ring
  Geometry geo_{};
  uint64_t mask_ = 0;
  uint64_t max_payload_ = 0;
  Header* hdr_ = nullptr;
  uint8_t* data_ = nullptr;
  std::unique_ptr<InPlaceFrameBuilder> builder_;

  // Private state; the shared header only ever receives copies of it.
  uint64_t prod_ = 0;
  uint64_t cached_cons_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t wake_fill_ = 0;  // fill (bytes) at which a sleeping consumer is woken
  uint64_t stats_wakes_ = 0;
  dsvmi_ring_producer_stats stats_{};
  struct Lost {
    uint64_t frames = 0, bytes = 0, first_seq = 0, range_offset = 0, range_end = 0;
  } lost_;
  uint32_t lost_generation_ = 0;
};

}  // namespace dsvmi::ring

// dsvmi ring: consumer side (the engine). C++ API.
//
// The consumer creates the ring file (or re-attaches to a live one after a
// restart), dequeues frames in bursts as views into the shared mapping (zero
// copy) and releases them in order. Everything read from the ring is
// untrusted: each record is bounds-checked and each frame checked with the
// FlatBuffers Verifier on a private snapshot of its metadata before a view is
// handed out. A bad record is skipped, counted and described in last_error().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dsvmi/frame_view.h"

namespace dsvmi {

struct RingGeometryInfo {
  uint64_t capacity = 0;    // data area bytes
  uint64_t max_record = 0;  // largest record
  uint64_t max_payload = 0; // largest Write payload a producer can enqueue
};

// The consumer's own tally (private, authoritative for this consumer) plus
// what the producer claims in the shared header (untrusted).
struct RingConsumerStats {
  uint64_t delivered_frames = 0;  // non-Lost frames handed out
  uint64_t delivered_bytes = 0;   // sum of their `length`
  uint64_t lost_records = 0;      // Lost frames handed out
  uint64_t lost_frames = 0;       // sum of their lost_frames
  uint64_t invalid_records = 0;   // records skipped as corrupt
  uint64_t invalid_bytes = 0;
  uint64_t bad_producer_index = 0;
  // Producer's shared counters, as read now (untrusted).
  uint64_t producer_index = 0;
  uint64_t consumer_index = 0;
  uint64_t produced_frames = 0;
  uint64_t produced_bytes = 0;
  uint64_t dropped_frames = 0;
  uint64_t dropped_bytes = 0;
  uint64_t producer_lost_records = 0;
  uint64_t bad_consumer_index = 0;
  // The producer's lost range not yet reported in band (lost_pending_frames
  // == 0: none), read consistently via the header's seqlock.
  bool lost_mirror_consistent = false;
  uint64_t lost_pending_frames = 0;
  uint64_t lost_pending_bytes = 0;
  uint64_t lost_pending_first_seq = 0;
  uint64_t lost_pending_offset = 0;
  uint64_t lost_pending_end = 0;
};

class RingConsumer {
 public:
  // Creates a new ring file at `path` (O_CREAT|O_EXCL, mode 0600) with a data
  // area of `capacity` bytes (a power of two, 64 KiB .. 16 GiB).
  static std::unique_ptr<RingConsumer> Create(const std::string& path, uint64_t capacity, std::string* err);
  // Re-attaches to an existing ring (consumer restart): continues from the
  // shared consumer index. Frames dequeued but not released by the previous
  // consumer are delivered again.
  static std::unique_ptr<RingConsumer> Attach(const std::string& path, std::string* err);
  ~RingConsumer();
  RingConsumer(const RingConsumer&) = delete;
  RingConsumer& operator=(const RingConsumer&) = delete;

  // Fills up to `max` views with the next valid frames (never blocks). Views
  // stay valid until released. Corrupt records are skipped (counted, see
  // last_error()); if the record chain itself is broken the consumer resyncs
  // to the producer index.
  size_t Dequeue(FrameView* out, size_t max);

  // Releases every dequeued frame up to and including `v` (in order) so the
  // producer may reuse their space. Returns false for a view that is not
  // outstanding.
  bool Release(const FrameView& v);
  // Releases everything dequeued so far.
  void ReleaseAll();

  // Waits until the ring has unread bytes: spins briefly, then sleeps on the
  // futex doorbell for at most timeout_ns (< 0: forever; 0: spin only). True
  // if data is there. The doorbell is coalesced (docs/ring.md): while the
  // ring is busy each futex sleep lasts at most the wake interval (1 ms by
  // default), after which the ring is checked again, and the producer wakes
  // the consumer earlier only when the ring is a quarter full. After
  // idle_after_ticks such sleeps found nothing (~8 ms) the consumer goes
  // idle: the producer then wakes it on the next frame, and it sleeps in
  // slices of the idle interval (100 ms), except for the first sleep, which
  // is one wake interval. So a frame is noticed within ~1 ms of being
  // published, and an idle consumer wakes ~10 times a second, not 1000.
  bool Wait(int64_t timeout_ns);
  // Longest single futex sleep in Wait() while napping (default 1 ms = the
  // event-latency bound the doorbell adds). < 0: no limit, rely on the
  // producer's fill-threshold wake alone (tests only: a ring that never
  // fills to the threshold is then never noticed); <= 0 also disables the
  // idle state.
  void set_wake_interval_ns(int64_t ns);
  // Consecutive empty wake intervals before the consumer goes idle (default
  // 8). < 0: never idle (nap forever, as before the idle state).
  void set_idle_after_ticks(int ticks);
  // Longest single futex sleep in Wait() while idle (default 100 ms). < 0: no
  // limit, rely on the producer's wake alone (tests).
  void set_idle_interval_ns(int64_t ns);
  // Long idle sleeps begun so far. Safe to call from another thread (tests
  // use it to know the consumer is past its first, short, idle sleep).
  uint64_t idle_sleeps() const;

  RingConsumerStats stats() const;
  RingGeometryInfo geometry() const;
  const std::string& path() const { return path_; }
  // The most recent validation problem (empty if none yet).
  const std::string& last_error() const { return last_error_; }
  // Number of validation problems seen (each also counted in stats()).
  uint64_t error_count() const { return error_count_; }

 private:
  struct Impl;
  explicit RingConsumer(std::unique_ptr<Impl> impl);
  static std::unique_ptr<RingConsumer> Open(const std::string& path, bool create, uint64_t capacity,
                                            std::string* err);
  void Fail(std::string msg);
  void Publish();
  void PublishStats();

  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::string last_error_;
  uint64_t error_count_ = 0;
};

}  // namespace dsvmi

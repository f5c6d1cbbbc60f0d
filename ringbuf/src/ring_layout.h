// The shared-memory layout of a dsvmi ring, shared by producer and consumer.
//
//   file = [ header: kHeaderBytes ][ data area: capacity bytes (power of two) ]
//
// Both sides map the data area twice, back to back, so a record that starts
// near the end of the data area continues seamlessly into the second mapping:
// records are never split at the wrap. Indices are free-running 64-bit byte
// counts; position in the data area = index & (capacity - 1).
//
// Everything in the header except the geometry line is live and written by
// one side only; each side reads the other side's fields as untrusted.
// docs/ring.md has the full argument.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dsvmi::ring {

inline constexpr uint64_t kMagic = 0x31474e524d565344ull;  // "DSVMRNG1" (little endian)
inline constexpr uint32_t kLayoutVersion = 2;  // 2: indices and counters on separate lines
inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kRecordAlign = 64;  // one cache line per record start
inline constexpr uint64_t kRecordHeaderBytes = 8;
inline constexpr uint64_t kMinCapacity = 64 * 1024;
inline constexpr uint64_t kMaxCapacity = 1ull << 34;  // 16 GiB

// Coalesced doorbell (docs/ring.md). The word `consumer_sleeping` is
//   kDoorbellAwake    the consumer is awake (the producer does nothing);
//   kDoorbellNapping  it re-checks the ring at least every kDoorbellTickNs
//                     (the added event-latency bound); the producer wakes it
//                     early only once the ring holds capacity /
//                     kDoorbellWakeFillDivisor bytes;
//   kDoorbellIdle     it found nothing for kDoorbellIdleAfterTicks ticks and
//                     sleeps in slices of kDoorbellIdleSliceNs; the producer
//                     wakes it on the next frame, whatever the fill. Its
//                     first futex wait after storing the value is still one
//                     tick (the producer's unfenced check may miss the store
//                     only that long).
inline constexpr uint32_t kDoorbellAwake = 0;
inline constexpr uint32_t kDoorbellNapping = 1;
inline constexpr uint32_t kDoorbellIdle = 2;
inline constexpr int64_t kDoorbellTickNs = 1'000'000;  // 1 ms
inline constexpr uint64_t kDoorbellWakeFillDivisor = 4;
inline constexpr int kDoorbellIdleAfterTicks = 8;            // ~8 ms of nothing
inline constexpr int64_t kDoorbellIdleSliceNs = 100'000'000;  // 100 ms

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

using A64 = std::atomic<uint64_t>;
using A32 = std::atomic<uint32_t>;

// Written once by the consumer at creation; both sides copy it privately at
// open and never read it again (so a later scribble cannot change geometry).
struct Geometry {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_bytes;
  uint64_t capacity;     // data area bytes, power of two
  uint64_t max_record;   // largest record (header + frame), <= capacity / 2
  uint32_t record_align;
  uint32_t reserved0;
  uint64_t creator_pid;
};

// Every live field below has exactly one writer. The two indices each have a
// line of their own, away from the counters: the consumer polls prod_index
// and the producer refreshes cons_index, so those two lines move between
// cores; the counter lines are written by their owner only and read only by
// stats()/ring-stat, so they stay in their writer's cache (no false sharing
// with an index). Lines are 128 bytes apart (adjacent-line prefetch pulls
// pairs of 64-byte lines).

// Producer-written: the producer index alone.
struct alignas(128) ProducerLine {
  A64 prod_index;  // store-release after the record bytes are written
};

// Producer-written counters (relaxed copies of the producer's private tally,
// updated with every produce call; informational: the producer's private
// tally is authoritative).
struct alignas(128) ProducerStatsLine {
  A64 produced_frames;     // every produce() / record_lost() call
  A64 produced_bytes;      // sum of `length` over those calls
  A64 dropped_frames;
  A64 dropped_bytes;
  A64 lost_records;        // Lost frames emitted
  A64 bad_consumer_index;  // consumer index seen out of range
};

// Consumer-written: the consumer index alone.
struct alignas(128) ConsumerLine {
  A64 cons_index;  // store-release after the consumer is done with records
};

// Consumer-written counters (relaxed copies of the consumer's tally,
// published together with cons_index).
struct alignas(128) ConsumerStatsLine {
  A64 delivered_frames;  // data frames handed to the engine
  A64 delivered_bytes;   // sum of their `length`
  A64 lost_records_seen;
  A64 lost_frames_reported;  // sum of lost_frames over Lost frames seen
  A64 invalid_records;   // records that failed validation (skipped)
  A64 invalid_bytes;     // ring bytes skipped because of them
  A64 bad_producer_index;
};

// The doorbell word on a line of its own: the producer reads it (relaxed)
// after every frame, so it must not share a line with anything written
// often; it only changes when the consumer goes to sleep or wakes.
struct alignas(128) DoorbellLine {
  A32 consumer_sleeping;  // futex word: kDoorbellAwake / Napping / Idle (above)
  A32 consumer_pid;
};

// The producer's not-yet-reported lost range, for a consumer that wants it
// without draining the ring. A seqlock: `generation` is odd while written.
struct alignas(128) LostMirror {
  A32 generation;
  A32 reserved0;
  A64 pending_frames;  // 0 = nothing pending
  A64 pending_bytes;
  A64 first_lost_seq;
  A64 range_offset;
  A64 range_end;
};

struct Header {
  Geometry geometry;
  ProducerLine producer;             // +128
  ProducerStatsLine producer_stats;  // +256
  ConsumerLine consumer;             // +384
  ConsumerStatsLine consumer_stats;  // +512
  DoorbellLine doorbell;             // +640
  LostMirror lost;                   // +768
};
static_assert(sizeof(Header) <= kHeaderBytes);
static_assert(offsetof(Header, producer) == 128 && offsetof(Header, producer_stats) == 256 &&
              offsetof(Header, consumer) == 384 && offsetof(Header, consumer_stats) == 512 &&
              offsetof(Header, doorbell) == 640 && offsetof(Header, lost) == 768);

// Precedes every frame in the data area. The frame occupies the LAST
// frame_len bytes of the record (FlatBuffers builds back to front into the
// reserved slot); bytes between the header and the frame are slack.
struct RecordHeader {
  uint32_t record_len;  // multiple of kRecordAlign, includes this header
  uint32_t frame_len;   // multiple of 8, <= record_len - kRecordHeaderBytes
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);

inline uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// True when index a is ahead of index b (within half the index space) and
// record-aligned: the only foreign index a side adopts in place of its own
// when the two disagree by more than the ring (docs/ring.md, "Hostile peers").
inline bool IsAhead(uint64_t a, uint64_t b) {
  return a != b && a - b < (uint64_t{1} << 63) && a % kRecordAlign == 0;
}

// Checks a private copy of the geometry against the file size. Returns false
// and a message naming the problem ("bad magic ...", "layout version ...").
bool ValidateGeometry(const Geometry& g, uint64_t file_size, std::string* err);

// Fills a fresh geometry for `capacity`.
Geometry MakeGeometry(uint64_t capacity);

// Maps `capacity` bytes of `fd` at `offset` twice, back to back. Returns
// nullptr and a message on failure. Unmap with UnmapTwice.
uint8_t* MapTwice(int fd, uint64_t offset, uint64_t capacity, std::string* err);
void UnmapTwice(uint8_t* base, uint64_t capacity);

std::string ErrnoMessage(const char* what, const std::string& path);

}  // namespace dsvmi::ring

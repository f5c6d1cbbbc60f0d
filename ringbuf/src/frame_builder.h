// Builds one FlatBuffers frame in place, in a caller-given region (a slot of
// the ring), with the payload copied exactly once from an iovec array.
//
// FlatBuffers builds back to front, so the finished frame ends exactly at
// region + region_len; the bytes below it were the builder's scratch. A custom
// allocator hands the builder the region itself, so nothing is allocated and
// nothing is copied after the build.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace dsvmi::ring {

struct FrameFields {
  uint64_t seq = 0;
  uint8_t kind = 0;  // dsvmi::fb::FrameKind
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t timestamp_ns = 0;
  uint64_t lost_frames = 0;  // Lost frames only
  uint64_t lost_bytes = 0;
  uint64_t first_lost_seq = 0;
};

// Builder scratch + frame metadata (vtable, table, root offset, identifier,
// alignment). FlatBuffers 2.0.8 needs 152 for the largest frame (a Lost frame
// with every field non-default); 8 bytes of margin. The unit test
// FrameBuilder.RegionBoundIsEnoughAndNothingOutsideIsWritten checks every kind
// and many sizes, and a wrong bound can only drop a frame, never overrun.
inline constexpr size_t kFrameOverheadBound = 160;

// Payloads of at least this many bytes are copied into the ring with
// non-temporal stores (docs/ring.md, "Copy"); 0 would stream everything.
inline constexpr size_t kStreamingCopyMin = 16 * 1024;

// A region of this size (and 8-aligned end) always holds the frame.
inline constexpr size_t FrameRegionBound(size_t payload_len) {
  return ((payload_len + 7) & ~size_t{7}) + kFrameOverheadBound;
}

class InPlaceFrameBuilder {
 public:
  // max_region: the largest region Build() will be given. Allocates (once,
  // lazily backed) an overflow area so that even a wrong bound can never make
  // the builder write outside the region; such a frame is reported as failed.
  explicit InPlaceFrameBuilder(size_t max_region);
  ~InPlaceFrameBuilder();

  // Builds the frame so that it ends at region + region_len (region_len a
  // multiple of 8, region_len >= FrameRegionBound(payload_len)). For payload
  // frames (payload_len > 0 or kind Write) `payload_len` bytes are copied from
  // iov after skipping iov_skip bytes; the caller checked they exist.
  // Returns the frame size (a multiple of 8), or 0 if the bound was wrong.
  size_t Build(uint8_t* region, size_t region_len, const FrameFields& f, bool with_payload, const struct iovec* iov,
               int iovcnt, size_t iov_skip, size_t payload_len);

 private:
  class SlotAllocator;
  std::unique_ptr<SlotAllocator> alloc_;
};

// memcpy with non-temporal stores for the 64-byte blocks (no fence: the
// caller issues _mm_sfence() before publishing). Exposed for bench_ring's
// baseline.
void CopyStreaming(uint8_t* dst, const uint8_t* src, size_t n);

// Total bytes available in iov after skipping `skip` bytes (saturating).
size_t IovBytesAfterSkip(const struct iovec* iov, int iovcnt, size_t skip);

}  // namespace dsvmi::ring

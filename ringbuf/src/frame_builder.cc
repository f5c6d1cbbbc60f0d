#include "frame_builder.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstring>

#include "dsvmi/frame_generated.h"

namespace dsvmi::ring {

// Hands the builder the ring slot. vector_downward asks for exactly
// `initial_size` (= region_len) on its first allocation and only asks again
// if the contents outgrow it, which FrameRegionBound rules out; if that ever
// happened, the growth goes to a private overflow area and the frame is
// reported as failed instead of writing past the slot.
class InPlaceFrameBuilder::SlotAllocator : public flatbuffers::Allocator {
 public:
  explicit SlotAllocator(size_t max_region)
      : overflow_size_(2 * max_region + 4096), overflow_(new uint8_t[overflow_size_]) {}

  void Reset(uint8_t* region, size_t region_len) {
    region_ = region;
    region_len_ = region_len;
    overflowed_ = false;
  }
  bool overflowed() const { return overflowed_; }

  uint8_t* allocate(size_t size) override {
    if (size <= region_len_) return region_ + (region_len_ - size);
    return Overflow(size);
  }
  void deallocate(uint8_t*, size_t) override {}
  uint8_t* reallocate_downward(uint8_t* old_p, size_t old_size, size_t new_size, size_t in_use_back,
                               size_t in_use_front) override {
    uint8_t* p = Overflow(new_size);
    memcpy_downward(old_p, old_size, p, new_size, in_use_back, in_use_front);
    return p;
  }

 private:
  uint8_t* Overflow(size_t size) {
    overflowed_ = true;
    // Growth is at most 1.5x + a few hundred bytes of a region <= max_region.
    if (size > overflow_size_) __builtin_trap();
    return overflow_.get() + (overflow_size_ - size);
  }

  uint8_t* region_ = nullptr;
  size_t region_len_ = 0;
  bool overflowed_ = false;
  size_t overflow_size_;
  std::unique_ptr<uint8_t[]> overflow_;
};

InPlaceFrameBuilder::InPlaceFrameBuilder(size_t max_region) : alloc_(new SlotAllocator(max_region)) {}
InPlaceFrameBuilder::~InPlaceFrameBuilder() = default;

size_t IovBytesAfterSkip(const struct iovec* iov, int iovcnt, size_t skip) {
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    len -= skip;
    skip = 0;
    if (total + len < total) return SIZE_MAX;
    total += len;
  }
  return total;
}

// Copies n bytes with non-temporal (streaming) stores where dst allows:
// the ring is far larger than the cache and the producer never reads the
// payload again, so a normal store would first read each destination line
// from memory (read-for-ownership) and then evict the caller's working set.
// Streaming stores are weakly ordered: the caller must _mm_sfence() before
// publishing (InPlaceFrameBuilder::Build does).
void CopyStreaming(uint8_t* dst, const uint8_t* src, size_t n) {
#if defined(__SSE2__)
  const size_t head = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
  if (head) {
    const size_t h = head < n ? head : n;
    std::memcpy(dst, src, h);
    dst += h;
    src += h;
    n -= h;
  }
  auto* d = reinterpret_cast<__m128i*>(dst);
  const auto* q = reinterpret_cast<const __m128i*>(src);
  size_t blocks = n / 64;
  for (; blocks; blocks--, d += 4, q += 4) {
    const __m128i a = _mm_loadu_si128(q);
    const __m128i b = _mm_loadu_si128(q + 1);
    const __m128i c = _mm_loadu_si128(q + 2);
    const __m128i e = _mm_loadu_si128(q + 3);
    _mm_stream_si128(d, a);
    _mm_stream_si128(d + 1, b);
    _mm_stream_si128(d + 2, c);
    _mm_stream_si128(d + 3, e);
  }
  const size_t done = (n / 64) * 64;
  if (n > done) std::memcpy(dst + done, src + done, n - done);
#else
  std::memcpy(dst, src, n);
#endif
}

static void CopyFromIov(uint8_t* dst, size_t n, const struct iovec* iov, int iovcnt, size_t skip) {
  const bool streaming = n >= kStreamingCopyMin;
  for (int i = 0; i < iovcnt && n > 0; i++) {
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const uint8_t* src = static_cast<const uint8_t*>(iov[i].iov_base) + skip;
    len -= skip;
    skip = 0;
    size_t c = len < n ? len : n;
    if (streaming && c >= 256) {
      CopyStreaming(dst, src, c);
    } else {
      std::memcpy(dst, src, c);
    }
    dst += c;
    n -= c;
  }
}

size_t InPlaceFrameBuilder::Build(uint8_t* region, size_t region_len, const FrameFields& f, bool with_payload,
                                  const struct iovec* iov, int iovcnt, size_t iov_skip, size_t payload_len) {
  alloc_->Reset(region, region_len);
  flatbuffers::FlatBufferBuilder fbb(region_len, alloc_.get(), false);
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> payload;
  if (with_payload) {
    uint8_t* dst = nullptr;
    payload = flatbuffers::Offset<flatbuffers::Vector<uint8_t>>(fbb.CreateUninitializedVector(payload_len, 1, &dst));
    if (alloc_->overflowed()) return 0;
    CopyFromIov(dst, payload_len, iov, iovcnt, iov_skip);
    // Orders the streaming stores before everything after (the producer's
    // release store of prod_index does not order them on x86).
#if defined(__SSE2__)
    if (payload_len >= kStreamingCopyMin) _mm_sfence();
#endif
  }
  auto frame = fb::CreateFrame(fbb, f.seq, static_cast<fb::FrameKind>(f.kind), f.offset, f.length, f.timestamp_ns,
                               payload, f.lost_frames, f.lost_bytes, f.first_lost_seq);
  fb::FinishFrameBuffer(fbb, frame);
  if (alloc_->overflowed()) return 0;
  return fbb.GetSize();
}

}  // namespace dsvmi::ring

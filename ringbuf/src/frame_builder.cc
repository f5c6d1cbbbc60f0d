#include "frame_builder.h"

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

static void CopyFromIov(uint8_t* dst, size_t n, const struct iovec* iov, int iovcnt, size_t skip) {
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
    std::memcpy(dst, src, c);
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
  }
  auto frame = fb::CreateFrame(fbb, f.seq, static_cast<fb::FrameKind>(f.kind), f.offset, f.length, f.timestamp_ns,
                               payload, f.lost_frames, f.lost_bytes, f.first_lost_seq);
  fb::FinishFrameBuffer(fbb, frame);
  if (alloc_->overflowed()) return 0;
  return fbb.GetSize();
}

}  // namespace dsvmi::ring

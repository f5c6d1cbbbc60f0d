#include "producer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "doorbell.h"
#include "dsvmi/frame_generated.h"
#include "ring_lock.h"

namespace dsvmi::ring {

namespace {

uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

std::unique_ptr<RingProducer> RingProducer::Open(const std::string& path, std::string* err) {
  std::unique_ptr<RingProducer> p(new RingProducer());
  p->fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (p->fd_ < 0) {
    *err = ErrnoMessage("open ring", path);
    return nullptr;
  }
  struct stat st;
  if (fstat(p->fd_, &st) != 0) {
    *err = ErrnoMessage("stat ring", path);
    return nullptr;
  }
  Geometry g{};
  if (st.st_size < static_cast<off_t>(kHeaderBytes) || pread(p->fd_, &g, sizeof g, 0) != sizeof g) {
    *err = "ring " + path + ": file too small for a ring header (not a dsvmi ring)";
    return nullptr;
  }
  std::string why;
  if (!ValidateGeometry(g, static_cast<uint64_t>(st.st_size), &why)) {
    *err = "ring " + path + ": " + why;
    return nullptr;
  }
  if (!TryLockRole(p->fd_, Role::kProducer, &why)) {
    *err = "ring " + path + ": " + why;
    return nullptr;
  }
  // After the role lock: a consumer that looks in between sees a producer
  // without the capability and merely naps for a while.
  AdvertiseIdleWake(p->fd_);
  void* h = mmap(nullptr, kHeaderBytes, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd_, 0);
  if (h == MAP_FAILED) {
    *err = ErrnoMessage("mmap ring header", path);
    return nullptr;
  }
  p->hdr_ = static_cast<Header*>(h);
  p->data_ = MapTwice(p->fd_, kHeaderBytes, g.capacity, &why);
  if (!p->data_) {
    *err = "ring " + path + ": " + why;
    return nullptr;
  }
  p->geo_ = g;
  p->mask_ = g.capacity - 1;
  p->max_payload_ = g.max_record - kRecordHeaderBytes - kFrameOverheadBound;
  if (p->max_payload_ > UINT32_MAX) p->max_payload_ = UINT32_MAX & ~uint64_t{7};
  p->builder_ = std::make_unique<InPlaceFrameBuilder>(g.max_record);

  // A reopened producer continues where the last one stopped (sequence
  // numbers and counters stay monotonic). These values are only a starting
  // point: if the consumer scribbled on them, the worst outcome is a jump.
  ProducerLine& pl = p->hdr_->producer;
  ProducerStatsLine& ps = p->hdr_->producer_stats;
  p->prod_ = pl.prod_index.load(std::memory_order_relaxed);
  const uint64_t cons = p->hdr_->consumer.cons_index.load(std::memory_order_acquire);
  if (p->prod_ - cons > g.capacity || (p->prod_ - cons) % kRecordAlign != 0) p->prod_ = cons;
  p->cached_cons_ = p->prod_ - g.capacity;  // "full": forces a fresh read
  p->next_seq_ = ps.produced_frames.load(std::memory_order_relaxed);
  p->stats_.produced_frames = p->next_seq_;
  p->stats_.produced_bytes = ps.produced_bytes.load(std::memory_order_relaxed);
  p->stats_.dropped_frames = ps.dropped_frames.load(std::memory_order_relaxed);
  p->stats_.dropped_bytes = ps.dropped_bytes.load(std::memory_order_relaxed);
  p->stats_.lost_records = ps.lost_records.load(std::memory_order_relaxed);
  p->stats_.bad_consumer_index = ps.bad_consumer_index.load(std::memory_order_relaxed);
  p->wake_fill_ = g.capacity / kDoorbellWakeFillDivisor;
  p->lost_generation_ = p->hdr_->lost.generation.load(std::memory_order_relaxed) & ~1u;
  pl.prod_index.store(p->prod_, std::memory_order_release);
  return p;
}

RingProducer::~RingProducer() {
  if (hdr_) munmap(hdr_, kHeaderBytes);
  UnmapTwice(data_, geo_.capacity);
  if (fd_ >= 0) close(fd_);
}

bool RingProducer::Reserve(uint64_t record_len, uint64_t extra) {
  if (record_len > geo_.max_record || extra > geo_.max_record) return false;
  const uint64_t need = record_len + extra;  // <= 2 * max_record <= capacity
  if (geo_.capacity - (prod_ - cached_cons_) >= need) return true;
  // Acquire: pairs with the consumer's release of cons_index, so the
  // consumer's last reads of the space we are about to reuse happen before
  // our writes to it.
  const uint64_t cons = hdr_->consumer.cons_index.load(std::memory_order_acquire);
  if (prod_ - cons > geo_.capacity) {
    stats_.bad_consumer_index++;
    hdr_->producer_stats.bad_consumer_index.store(stats_.bad_consumer_index, std::memory_order_relaxed);
    if (ring::IsAhead(cons, prod_)) {
      // The consumer is ahead of us (it followed a forged producer index past
      // ours): nothing before its index belongs to anybody, so go on from
      // there, an empty ring. Yielding to the index that is ahead, on both
      // sides, is what makes scribbled indices converge (docs/ring.md).
      prod_ = cons;
      cached_cons_ = cons;
      hdr_->producer.prod_index.store(prod_, std::memory_order_release);
      return geo_.capacity >= need;
    }
    // Behind us by more than the ring: never overwrite what may be unread.
    // Republish ours; a consumer that holds nothing continues from it.
    hdr_->producer.prod_index.store(prod_, std::memory_order_release);
    return false;
  }
  cached_cons_ = cons;
  return geo_.capacity - (prod_ - cons) >= need;
}

bool RingProducer::HasRoomFor(size_t payload_len) {
  if (payload_len > max_payload_) return false;
  uint64_t need = RecordBytes(payload_len);
  if (lost_.frames) need += RecordBytes(0);
  return Reserve(need);
}

bool RingProducer::Emit(uint64_t record_len, const FrameFields& f, bool with_payload, const struct iovec* iov,
                        int iovcnt, size_t iov_skip, size_t payload_len) {
  // The double mapping makes [slot, slot + record_len) contiguous for any
  // slot < capacity and record_len <= max_record <= capacity / 2, whatever
  // the consumer wrote: this is the producer's memory-safety argument.
  uint8_t* slot = data_ + (prod_ & mask_);
  size_t frame_len = builder_->Build(slot + kRecordHeaderBytes, record_len - kRecordHeaderBytes, f, with_payload,
                                     iov, iovcnt, iov_skip, payload_len);
  if (frame_len == 0) return false;
  RecordHeader rh{static_cast<uint32_t>(record_len), static_cast<uint32_t>(frame_len)};
  std::memcpy(slot, &rh, sizeof rh);
  prod_ += record_len;
  // Release: the record bytes above become visible before the index that
  // covers them (pairs with the consumer's acquire load). On x86 a plain
  // store: no fence, no stall while the consumer holds the line.
  hdr_->producer.prod_index.store(prod_, std::memory_order_release);
  // Coalesced doorbell (docs/ring.md): a relaxed load of a line that only
  // changes when the consumer falls asleep or wakes. Nothing else while the
  // consumer is awake.
  const uint32_t sleeping = hdr_->doorbell.consumer_sleeping.load(std::memory_order_relaxed);
  if (__builtin_expect(sleeping != 0, 0)) RingDoorbell(sleeping);
  return true;
}

void RingProducer::RingDoorbell(uint32_t seen) {
  // `seen` is the doorbell word as our relaxed load found it. This load is
  // NOT ordered after our prod_index store (no StoreLoad fence): it may miss
  // a consumer that is just falling asleep (or just going idle); that
  // consumer's next futex wait is one short tick, after which it finds this
  // frame itself, and any later frame's load sees its word.
  //
  // kDoorbellNapping: the consumer re-checks the ring every kDoorbellTickNs
  // on its own and finds this frame within that bound. Wake it early only
  // once the ring is filling up, so that a burst cannot overflow the ring
  // while it naps. The fill uses a fresh consumer index (the consumer is
  // asleep, so its line is not moving); a hostile index only makes us wake
  // more.
  //
  // kDoorbellIdle (or any other value): the consumer sleeps in long slices
  // and relies on us: wake it now, whatever the fill. One syscall per
  // idle -> busy transition; a hostile consumer that keeps storing the value
  // costs one syscall per frame, never a block.
  if (seen == kDoorbellNapping) {
    const uint64_t cons = hdr_->consumer.cons_index.load(std::memory_order_relaxed);
    if (prod_ - cons < wake_fill_) return;
  }
  auto& word = hdr_->doorbell.consumer_sleeping;
  if (word.exchange(kDoorbellAwake, std::memory_order_relaxed) != kDoorbellAwake) {
    stats_wakes_++;
    FutexWakeAll(&word);
  }
}

void RingProducer::PublishLostMirror() {
  LostMirror& m = hdr_->lost;
  // Fence-free seqlock: release on every field store means a reader that
  // sees any new field value also sees the odd generation stored before it.
  m.generation.store(++lost_generation_, std::memory_order_relaxed);  // odd: being written
  m.pending_frames.store(lost_.frames, std::memory_order_release);
  m.pending_bytes.store(lost_.bytes, std::memory_order_release);
  m.first_lost_seq.store(lost_.first_seq, std::memory_order_release);
  m.range_offset.store(lost_.range_offset, std::memory_order_release);
  m.range_end.store(lost_.range_end, std::memory_order_release);
  m.generation.store(++lost_generation_, std::memory_order_release);  // even: stable
}

void RingProducer::Drop(uint64_t seq, uint64_t offset, uint64_t length) {
  stats_.dropped_frames++;
  stats_.dropped_bytes += length;
  hdr_->producer_stats.dropped_frames.store(stats_.dropped_frames, std::memory_order_relaxed);
  hdr_->producer_stats.dropped_bytes.store(stats_.dropped_bytes, std::memory_order_relaxed);
  uint64_t end = offset + length < offset ? UINT64_MAX : offset + length;
  if (lost_.frames == 0) {
    lost_.first_seq = seq;
    lost_.range_offset = length ? offset : 0;
    lost_.range_end = length ? end : 0;
  } else if (length) {
    if (lost_.range_end == lost_.range_offset) {  // range still empty (only flushes so far)
      lost_.range_offset = offset;
      lost_.range_end = end;
    } else {
      if (offset < lost_.range_offset) lost_.range_offset = offset;
      if (end > lost_.range_end) lost_.range_end = end;
    }
  }
  lost_.frames++;
  lost_.bytes += length;
  PublishLostMirror();
  // A full ring with a sleeping consumer: make sure it is woken (Emit, which
  // normally looks, is not reached while frames are being dropped).
  const uint32_t sleeping = hdr_->doorbell.consumer_sleeping.load(std::memory_order_relaxed);
  if (sleeping != 0) RingDoorbell(sleeping);
}

bool RingProducer::EmitPendingLost() {
  const uint64_t record_len = RecordBytes(0);
  if (!Reserve(record_len)) return false;
  FrameFields f;
  f.seq = lost_.first_seq + lost_.frames - 1;
  f.kind = static_cast<uint8_t>(fb::FrameKind::Lost);
  f.offset = lost_.range_offset;
  f.length = lost_.range_end - lost_.range_offset;
  f.timestamp_ns = MonotonicNs();
  f.lost_frames = lost_.frames;
  f.lost_bytes = lost_.bytes;
  f.first_lost_seq = lost_.first_seq;
  if (!Emit(record_len, f, false, nullptr, 0, 0, 0)) return false;
  stats_.lost_records++;
  hdr_->producer_stats.lost_records.store(stats_.lost_records, std::memory_order_relaxed);
  lost_ = Lost{};
  PublishLostMirror();
  return true;
}

void RingProducer::RecordLost(uint64_t offset, uint64_t length) {
  const uint64_t seq = next_seq_++;
  stats_.produced_frames = next_seq_;
  stats_.produced_bytes += length;
  hdr_->producer_stats.produced_frames.store(stats_.produced_frames, std::memory_order_relaxed);
  hdr_->producer_stats.produced_bytes.store(stats_.produced_bytes, std::memory_order_relaxed);
  Drop(seq, offset, length);
}

bool RingProducer::Produce(int kind, uint64_t offset, uint64_t length, const struct iovec* iov, int iovcnt,
                           size_t iov_skip) {
  const uint64_t seq = next_seq_++;
  stats_.produced_frames = next_seq_;
  stats_.produced_bytes += length;
  hdr_->producer_stats.produced_frames.store(stats_.produced_frames, std::memory_order_relaxed);
  hdr_->producer_stats.produced_bytes.store(stats_.produced_bytes, std::memory_order_relaxed);

  const bool with_payload = kind == DSVMI_FRAME_WRITE;
  size_t payload_len = 0;
  if (kind < DSVMI_FRAME_WRITE || kind > DSVMI_FRAME_FLUSH) {
    Drop(seq, offset, length);
    return false;
  }
  if (with_payload) {
    if (length > max_payload_ || iovcnt < 0 || (iovcnt > 0 && !iov) ||
        IovBytesAfterSkip(iov, iovcnt, iov_skip) < length) {
      Drop(seq, offset, length);
      return false;
    }
    payload_len = static_cast<size_t>(length);
  }
  // After a drop, the Lost frame goes first so the consumer learns exactly
  // where in the sequence the gap is. It goes out only together with the
  // frame after it: alone, it would spend the last free bytes of a full ring
  // on one Lost record per dropped request. Until then the loss stays
  // pending (mirrored in the header).
  const uint64_t record_len = RecordBytes(payload_len);
  if (!Reserve(record_len, lost_.frames ? RecordBytes(0) : 0) ||
      (lost_.frames && !EmitPendingLost())) {
    Drop(seq, offset, length);
    return false;
  }
  FrameFields f;
  f.seq = seq;
  f.kind = static_cast<uint8_t>(kind);
  f.offset = offset;
  f.length = length;
  f.timestamp_ns = MonotonicNs();
  if (!Emit(record_len, f, with_payload, iov, iovcnt, iov_skip, payload_len)) {
    Drop(seq, offset, length);
    return false;
  }
  return true;
}

}  // namespace dsvmi::ring

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstring>

#include "doorbell.h"
#include "dsvmi/ring_consumer.h"
#include "frame_builder.h"
#include "ring_layout.h"
#include "ring_lock.h"

namespace dsvmi {

using namespace ring;

struct RingConsumer::Impl {
  int fd = -1;
  Geometry geo{};
  uint64_t mask = 0;
  Header* hdr = nullptr;
  uint8_t* data = nullptr;

  // Private state. cons = released (published) index, read = next record to
  // examine, last_end = end of the last record handed out as a view.
  uint64_t cons = 0;
  uint64_t read = 0;
  uint64_t cached_prod = 0;
  uint64_t last_end = 0;
  bool have_seq = false;
  uint64_t last_seq = 0;
  int64_t tick_ns = kDoorbellTickNs;
  RingConsumerStats tally;

  // Doorbell idle state (Wait()). empty_ticks counts consecutive futex waits
  // that ended with nothing to read, across Wait() calls; it restarts when
  // anything is found or consumed (idle_mark = `read` when it was last reset).
  int idle_after_ticks = kDoorbellIdleAfterTicks;
  int64_t idle_slice_ns = kDoorbellIdleSliceNs;
  int empty_ticks = 0;
  uint64_t idle_mark = 0;
  // A producer without the idle wake was attached at the last check: nap
  // until this time, then look again.
  int64_t peer_recheck_ns = 0;
  std::atomic<uint64_t> idle_sleeps{0};  // long idle slices begun (tests)

  ~Impl() {
    if (hdr) munmap(hdr, kHeaderBytes);
    UnmapTwice(data, geo.capacity);
    if (fd >= 0) close(fd);
  }
};

RingConsumer::RingConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RingConsumer::~RingConsumer() = default;

std::unique_ptr<RingConsumer> RingConsumer::Create(const std::string& path, uint64_t capacity, std::string* err) {
  return Open(path, true, capacity, err);
}

std::unique_ptr<RingConsumer> RingConsumer::Attach(const std::string& path, std::string* err) {
  return Open(path, false, 0, err);
}

std::unique_ptr<RingConsumer> RingConsumer::Open(const std::string& path, bool create, uint64_t capacity,
                                                 std::string* err) {
  auto impl = std::make_unique<Impl>();
  std::string why;
  if (create) {
    Geometry g = MakeGeometry(capacity);
    if (!ValidateGeometry(g, kHeaderBytes + capacity, &why)) {
      *err = "create ring " + path + ": " + why;
      return nullptr;
    }
    impl->fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (impl->fd < 0) {
      *err = ErrnoMessage("create ring", path);
      return nullptr;
    }
    // tmpfs allocates on first touch; ftruncate zero-fills the header, so all
    // indices and counters start at 0. Geometry is written last, via pwrite,
    // so a producer racing the creation sees either no magic or all of it.
    if (ftruncate(impl->fd, static_cast<off_t>(kHeaderBytes + capacity)) != 0 ||
        pwrite(impl->fd, &g, sizeof g, 0) != static_cast<ssize_t>(sizeof g)) {
      *err = ErrnoMessage("size ring", path);
      unlink(path.c_str());
      return nullptr;
    }
  } else {
    impl->fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (impl->fd < 0) {
      *err = ErrnoMessage("open ring", path);
      return nullptr;
    }
  }
  struct stat st;
  Geometry g{};
  if (fstat(impl->fd, &st) != 0 || st.st_size < static_cast<off_t>(kHeaderBytes) ||
      pread(impl->fd, &g, sizeof g, 0) != static_cast<ssize_t>(sizeof g)) {
    *err = "ring " + path + ": file too small for a ring header (not a dsvmi ring)";
    return nullptr;
  }
  if (!ValidateGeometry(g, static_cast<uint64_t>(st.st_size), &why) ||
      !TryLockRole(impl->fd, Role::kConsumer, &why)) {
    *err = "ring " + path + ": " + why;
    return nullptr;
  }
  void* h = mmap(nullptr, kHeaderBytes, PROT_READ | PROT_WRITE, MAP_SHARED, impl->fd, 0);
  if (h == MAP_FAILED) {
    *err = ErrnoMessage("mmap ring header", path);
    return nullptr;
  }
  impl->hdr = static_cast<Header*>(h);
  impl->data = MapTwice(impl->fd, kHeaderBytes, g.capacity, &why);
  if (!impl->data) {
    *err = "ring " + path + ": " + why;
    return nullptr;
  }
  impl->geo = g;
  impl->mask = g.capacity - 1;

  std::unique_ptr<RingConsumer> c(new RingConsumer(std::move(impl)));
  c->path_ = path;
  Impl& m = *c->impl_;
  ConsumerLine& cl = m.hdr->consumer;
  ConsumerStatsLine& cs = m.hdr->consumer_stats;
  m.hdr->doorbell.consumer_pid.store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed);
  m.hdr->doorbell.consumer_sleeping.store(kDoorbellAwake, std::memory_order_relaxed);
  // Restart: continue at the shared consumer index and the previous
  // consumer's counters, if they make sense against the producer index.
  m.cons = cl.cons_index.load(std::memory_order_relaxed);
  const uint64_t prod = m.hdr->producer.prod_index.load(std::memory_order_acquire);
  if (prod - m.cons > g.capacity) {
    c->Fail("attach: consumer index " + std::to_string(m.cons) + " is not within the ring below producer index " +
            std::to_string(prod) + "; resyncing to the producer index");
    m.cons = prod;
  }
  m.read = m.cons;
  m.last_end = m.cons;
  m.cached_prod = m.cons;
  m.tally.delivered_frames = cs.delivered_frames.load(std::memory_order_relaxed);
  m.tally.delivered_bytes = cs.delivered_bytes.load(std::memory_order_relaxed);
  m.tally.lost_records = cs.lost_records_seen.load(std::memory_order_relaxed);
  m.tally.lost_frames = cs.lost_frames_reported.load(std::memory_order_relaxed);
  m.tally.invalid_records += cs.invalid_records.load(std::memory_order_relaxed);
  m.tally.invalid_bytes = cs.invalid_bytes.load(std::memory_order_relaxed);
  m.tally.bad_producer_index += cs.bad_producer_index.load(std::memory_order_relaxed);
  c->Publish();
  return c;
}

void RingConsumer::Fail(std::string msg) {
  last_error_ = "ring " + path_ + ": " + std::move(msg);
  error_count_++;
}

// Copies the private tally to the shared counter line (read only by
// stats()/ring-stat: it stays in this core's cache).
void RingConsumer::PublishStats() {
  Impl& m = *impl_;
  ConsumerStatsLine& cs = m.hdr->consumer_stats;
  cs.delivered_frames.store(m.tally.delivered_frames, std::memory_order_relaxed);
  cs.delivered_bytes.store(m.tally.delivered_bytes, std::memory_order_relaxed);
  cs.lost_records_seen.store(m.tally.lost_records, std::memory_order_relaxed);
  cs.lost_frames_reported.store(m.tally.lost_frames, std::memory_order_relaxed);
  cs.invalid_records.store(m.tally.invalid_records, std::memory_order_relaxed);
  cs.invalid_bytes.store(m.tally.invalid_bytes, std::memory_order_relaxed);
  cs.bad_producer_index.store(m.tally.bad_producer_index, std::memory_order_relaxed);
}

// Counters, then the index. Release on cons_index: our reads of the released
// records happen before the producer (acquire) may overwrite them.
void RingConsumer::Publish() {
  Impl& m = *impl_;
  PublishStats();
  m.hdr->consumer.cons_index.store(m.cons, std::memory_order_release);
}

size_t RingConsumer::Dequeue(FrameView* out, size_t max) {
  Impl& m = *impl_;
  const uint64_t cap = m.geo.capacity;
  size_t n = 0;
  bool skipped = false;
  while (n < max) {
    if (m.cached_prod == m.read) {
      // Acquire: pairs with the producer's release store, making the record
      // bytes below the index visible.
      const uint64_t prod = m.hdr->producer.prod_index.load(std::memory_order_acquire);
      // The producer may be anywhere in [read, cons + capacity]; anything
      // else is a corrupted or hostile index: report, read nothing.
      if (prod - m.cons > cap && ring::IsAhead(prod, m.cons) && m.read == m.cons) {
        // More than a ring ahead of us while we hold nothing: the producer
        // went on from an index we never saw (a forged consumer index it
        // followed). Continue from its index; what lay between is lost.
        m.tally.bad_producer_index++;
        m.tally.invalid_bytes += prod - m.read;
        char buf[160];
        std::snprintf(buf, sizeof buf, "producer index %" PRIu64 " is more than the ring ahead of %" PRIu64
                      "; continuing from it", prod, m.read);
        Fail(buf);
        m.read = m.cons = m.last_end = m.cached_prod = prod;
        Publish();
        break;
      }
      if (prod - m.cons > cap || prod - m.cons < m.read - m.cons) {
        m.tally.bad_producer_index++;
        char buf[160];
        std::snprintf(buf, sizeof buf, "producer index %" PRIu64 " out of range [%" PRIu64 ", %" PRIu64 "]; ignoring it",
                      prod, m.read, m.cons + cap);
        Fail(buf);
        // Restore our own index too, in case it was scribbled on (self-healing).
        Publish();
        break;
      }
      m.cached_prod = prod;
      if (prod == m.read) break;
    }
    const uint64_t avail = m.cached_prod - m.read;
    const uint8_t* slot = m.data + (m.read & m.mask);
    RecordHeader rh;
    std::memcpy(&rh, slot, sizeof rh);  // one snapshot; the producer may be hostile
    if (rh.record_len < kRecordAlign || rh.record_len % kRecordAlign != 0 || rh.record_len > avail ||
        rh.record_len > m.geo.max_record || rh.frame_len > rh.record_len - kRecordHeaderBytes) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "record at index %" PRIu64 ": bad header (record %" PRIu32 " bytes, frame %" PRIu32
                    " bytes, %" PRIu64 " published); skipping to the producer index",
                    m.read, rh.record_len, rh.frame_len, avail);
      Fail(buf);
      // The chain of records is broken: nothing after this point can be
      // found, so drop everything published so far.
      m.tally.invalid_records++;
      m.tally.invalid_bytes += avail;
      m.read = m.cached_prod;
      skipped = true;
      continue;
    }
    const uint8_t* frame = slot + rh.record_len - rh.frame_len;
    FrameView v;
    std::string why;
    bool ok = DecodeFrame(frame, rh.frame_len, &v, &why);
    if (ok && m.have_seq && v.seq <= m.last_seq) {
      why = "frame: sequence number " + std::to_string(v.seq) + " does not follow " + std::to_string(m.last_seq);
      ok = false;
    }
    if (!ok) {
      Fail("record at index " + std::to_string(m.read) + ": " + why + "; skipped");
      m.tally.invalid_records++;
      m.tally.invalid_bytes += rh.record_len;
      m.read += rh.record_len;
      skipped = true;
      continue;
    }
    m.have_seq = true;
    m.last_seq = v.seq;
    m.read += rh.record_len;
    v.ring_end = m.read;
    m.last_end = m.read;
    if (v.kind == FrameKind::kLost) {
      m.tally.lost_records++;
      m.tally.lost_frames += v.lost_frames;
    } else {
      m.tally.delivered_frames++;
      m.tally.delivered_bytes += v.length;
    }
    out[n++] = v;
  }
  // Nothing outstanding: skipped bytes can go back to the producer now.
  if (m.cons == m.last_end && m.read != m.cons) {
    m.cons = m.read;
    m.last_end = m.read;
    skipped = true;
  }
  // The index moves only on release (or a skip); the counters once per burst.
  if (skipped) {
    Publish();
  } else if (n) {
    PublishStats();
  }
  return n;
}

bool RingConsumer::Release(const FrameView& v) {
  Impl& m = *impl_;
  const uint64_t outstanding = m.last_end - m.cons;
  const uint64_t upto = v.ring_end - m.cons;
  if (upto == 0 || upto > outstanding) return false;
  m.cons = v.ring_end;
  if (m.cons == m.last_end) {
    m.cons = m.read;  // also give back records skipped after the last view
    m.last_end = m.read;
  }
  Publish();
  return true;
}

void RingConsumer::ReleaseAll() {
  Impl& m = *impl_;
  m.cons = m.read;
  m.last_end = m.read;
  Publish();
}

namespace {
// Polls before Wait() sleeps. A pause is ~150 ns on this kind of machine
// (AMD EPYC VM; 2000 of them, the old spin, burnt ~0.3 ms of a core per idle
// period): ~7 µs catches a frame that is about to land, then sleep.
constexpr int kWaitSpins = 50;

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

void RingConsumer::set_wake_interval_ns(int64_t ns) { impl_->tick_ns = ns; }
void RingConsumer::set_idle_after_ticks(int ticks) { impl_->idle_after_ticks = ticks; }
void RingConsumer::set_idle_interval_ns(int64_t ns) { impl_->idle_slice_ns = ns; }
uint64_t RingConsumer::idle_sleeps() const { return impl_->idle_sleeps.load(std::memory_order_relaxed); }

// Coalesced doorbell (docs/ring.md): a short spin, then futex sleeps,
// re-checking the ring after every one.
//
// Napping (word = kDoorbellNapping): sleeps of at most one tick each. The
// producer wakes us early only when the ring passes its fill threshold, and
// that wake may be missed (its check is deliberately unfenced): the tick is
// what bounds the latency, the wake only protects the ring from overflowing.
//
// Idle (word = kDoorbellIdle), after idle_after_ticks ticks that found
// nothing: the producer wakes us on its next frame, so we sleep in long
// slices. Not the first futex wait after storing the value, though: the
// producer's unfenced load may miss our store while its own prod_index store
// still sits in its store buffer, and then nobody wakes us. That first wait
// is one tick; after it the producer's store is long visible (the re-check
// finds the frame) and any later frame's load sees kDoorbellIdle. A producer
// that does not wake idle consumers (an older library: no idle-wake lock)
// keeps us napping.
bool RingConsumer::Wait(int64_t timeout_ns) {
  Impl& m = *impl_;
  auto has_data = [&] {
    return m.hdr->producer.prod_index.load(std::memory_order_acquire) != m.read;
  };
  if (m.read != m.idle_mark) {  // consumed something since: not idle
    m.idle_mark = m.read;
    m.empty_ticks = 0;
  }
  for (int i = 0; i < kWaitSpins; i++) {
    if (has_data()) {
      m.empty_ticks = 0;
      return true;
    }
    __builtin_ia32_pause();
  }
  if (timeout_ns == 0) return false;
  const int64_t deadline = timeout_ns < 0 ? INT64_MAX : NowNs() + timeout_ns;
  auto& word = m.hdr->doorbell.consumer_sleeping;
  uint32_t stored = kDoorbellAwake;  // our last store to the word in this call
  int64_t stored_ns = 0;             // ... and when
  bool found = false;
  for (;;) {
    bool idle = m.tick_ns > 0 && m.idle_after_ticks >= 0 && m.empty_ticks >= m.idle_after_ticks;
    if (idle) {
      const int64_t now = NowNs();
      if (now < m.peer_recheck_ns) {
        idle = false;
      } else if (!ProducerWakesIdle(m.fd)) {
        idle = false;
        m.peer_recheck_ns = now + kDoorbellIdleSliceNs;
      }
    }
    int64_t slice = m.tick_ns;
    if (idle && stored == kDoorbellIdle && word.load(std::memory_order_relaxed) == kDoorbellIdle) {
      // The word has held kDoorbellIdle since stored_ns (a producer only
      // ever stores kDoorbellAwake): once that is a full tick, any frame the
      // re-check below misses is published late enough that its producer's
      // load sees kDoorbellIdle and rings the bell.
      const int64_t held = NowNs() - stored_ns;
      if (held >= m.tick_ns) {
        slice = m.idle_slice_ns;
        m.idle_sleeps.fetch_add(1, std::memory_order_relaxed);
      } else {
        slice = m.tick_ns - held;  // the first tick was cut short (a signal)
      }
    } else {
      // seq_cst: drains our store buffer, so the producer sees the word as
      // soon as possible, and the re-check below reads prod_index after it.
      stored = idle ? kDoorbellIdle : kDoorbellNapping;
      word.store(stored, std::memory_order_seq_cst);
      stored_ns = idle ? NowNs() : 0;
    }
    if (m.hdr->producer.prod_index.load(std::memory_order_seq_cst) != m.read) {
      found = true;
      break;
    }
    if (deadline != INT64_MAX) {
      const int64_t left = deadline - NowNs();
      if (left <= 0) break;
      if (slice < 0 || left < slice) slice = left;
    }
    FutexWait(&word, stored, slice);
    if (has_data()) {
      found = true;
      break;
    }
    if (m.empty_ticks < INT_MAX) m.empty_ticks++;
    if (deadline != INT64_MAX && NowNs() >= deadline) break;
  }
  word.store(kDoorbellAwake, std::memory_order_relaxed);
  if (found || has_data()) {
    m.empty_ticks = 0;
    return true;
  }
  return false;
}

RingGeometryInfo RingConsumer::geometry() const {
  RingGeometryInfo g;
  g.capacity = impl_->geo.capacity;
  g.max_record = impl_->geo.max_record;
  g.max_payload = g.max_record - kRecordHeaderBytes - kFrameOverheadBound;
  return g;
}

RingConsumerStats RingConsumer::stats() const {
  const Impl& m = *impl_;
  RingConsumerStats s = m.tally;
  const ProducerStatsLine& pl = m.hdr->producer_stats;
  s.producer_index = m.hdr->producer.prod_index.load(std::memory_order_acquire);
  s.consumer_index = m.cons;
  s.produced_frames = pl.produced_frames.load(std::memory_order_relaxed);
  s.produced_bytes = pl.produced_bytes.load(std::memory_order_relaxed);
  s.dropped_frames = pl.dropped_frames.load(std::memory_order_relaxed);
  s.dropped_bytes = pl.dropped_bytes.load(std::memory_order_relaxed);
  s.producer_lost_records = pl.lost_records.load(std::memory_order_relaxed);
  s.bad_consumer_index = pl.bad_consumer_index.load(std::memory_order_relaxed);
  const LostMirror& lm = m.hdr->lost;
  for (int attempt = 0; attempt < 100 && !s.lost_mirror_consistent; attempt++) {
    const uint32_t g1 = lm.generation.load(std::memory_order_acquire);
    s.lost_pending_frames = lm.pending_frames.load(std::memory_order_acquire);
    s.lost_pending_bytes = lm.pending_bytes.load(std::memory_order_acquire);
    s.lost_pending_first_seq = lm.first_lost_seq.load(std::memory_order_acquire);
    s.lost_pending_offset = lm.range_offset.load(std::memory_order_acquire);
    s.lost_pending_end = lm.range_end.load(std::memory_order_acquire);
    const uint32_t g2 = lm.generation.load(std::memory_order_relaxed);
    s.lost_mirror_consistent = g1 == g2 && g1 % 2 == 0;
  }
  return s;
}

}  // namespace dsvmi

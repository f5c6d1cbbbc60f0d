#include "event_out.h"

#include <time.h>

#include <algorithm>
#include <utility>

namespace dsvmi::infer {
namespace {

// Caps on one coalesced modify event (bytes of file): with --data the event
// holds the bytes in memory and in its JSON line.
constexpr uint64_t kMaxCoalescedDataBytes = 1ull << 20;
constexpr uint64_t kMaxCoalescedBytes = 1ull << 30;

}  // namespace

void EventOut::emit(Event&& e) {
  release_held();
  emit_now(std::move(e));
}

void EventOut::release_held() {
  if (!has_held_) return;
  has_held_ = false;
  emit_now(std::move(held_));
  held_ = Event();
}

void EventOut::modify(Event&& e, const uint8_t* data, uint64_t len) {
  // Coalesce with the held event when this piece continues it: same file,
  // same frame, next byte. With data capture the merged event carries the
  // bytes, so its size is capped.
  Event& h = held_;
  const bool capture = ctx_.options.capture_data;
  if (has_held_ && h.ino == e.ino && h.frame_seq == e.frame_seq && h.offset + h.length == e.offset &&
      h.length + len <= (capture ? kMaxCoalescedDataBytes : kMaxCoalescedBytes)) {
    h.length += len;
    h.path = std::move(e.path);
    h.has_attrs = e.has_attrs;
    h.attrs = std::move(e.attrs);
    if (capture) h.data.insert(h.data.end(), data, data + len);
    return;
  }
  if (capture) e.data.assign(data, data + len);
  release_held();
  held_ = std::move(e);
  has_held_ = true;
}

void EventOut::emit_now(Event&& e) {
  e.seq = ctx_.next_event_seq++;
  if (ctx_.options.measure_latency) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t now = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
    // A producer clock ahead of ours (untrusted timestamp) counts as 0.
    const uint64_t us = now > e.time_ns ? (now - e.time_ns) / 1000 : 0;
    e.latency_us = static_cast<int64_t>(std::min<uint64_t>(us, INT64_MAX));
    ctx_.stats.latency.record(us);
    ctx_.interval_latency.record(us);
  }
  ctx_.stats.events++;
  ctx_.sink->emit(e);
}

}  // namespace dsvmi::infer

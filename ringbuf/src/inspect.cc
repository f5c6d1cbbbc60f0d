#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "dsvmi/ring_inspect.h"
#include "ring_layout.h"

namespace dsvmi {

using namespace ring;

bool InspectRing(const std::string& path, RingSnapshot* out, std::string* err) {
  *out = RingSnapshot{};
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = ErrnoMessage("open ring", path);
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *err = ErrnoMessage("stat ring", path);
    close(fd);
    return false;
  }
  if (st.st_size < static_cast<off_t>(kHeaderBytes)) {
    out->geometry_error = "file is " + std::to_string(st.st_size) + " bytes, smaller than a ring header";
    close(fd);
    return true;
  }
  void* h = mmap(nullptr, kHeaderBytes, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (h == MAP_FAILED) {
    *err = ErrnoMessage("mmap ring header", path);
    return false;
  }
  const Header* hdr = static_cast<const Header*>(h);
  Geometry g;
  std::memcpy(&g, &hdr->geometry, sizeof g);
  out->magic = g.magic;
  out->layout_version = g.layout_version;
  out->capacity = g.capacity;
  out->max_record = g.max_record;
  out->creator_pid = g.creator_pid;
  out->geometry_ok = ValidateGeometry(g, static_cast<uint64_t>(st.st_size), &out->geometry_error);
  if (out->geometry_ok) {
    const ProducerStatsLine& p = hdr->producer_stats;
    const ConsumerStatsLine& c = hdr->consumer_stats;
    out->producer_index = hdr->producer.prod_index.load(std::memory_order_acquire);
    out->consumer_index = hdr->consumer.cons_index.load(std::memory_order_acquire);
    out->indices_ok = out->producer_index - out->consumer_index <= g.capacity;
    out->produced_frames = p.produced_frames.load(std::memory_order_relaxed);
    out->produced_bytes = p.produced_bytes.load(std::memory_order_relaxed);
    out->dropped_frames = p.dropped_frames.load(std::memory_order_relaxed);
    out->dropped_bytes = p.dropped_bytes.load(std::memory_order_relaxed);
    out->lost_records = p.lost_records.load(std::memory_order_relaxed);
    out->bad_consumer_index = p.bad_consumer_index.load(std::memory_order_relaxed);
    out->consumer_pid = hdr->doorbell.consumer_pid.load(std::memory_order_relaxed);
    out->consumer_sleeping = hdr->doorbell.consumer_sleeping.load(std::memory_order_relaxed);
    out->delivered_frames = c.delivered_frames.load(std::memory_order_relaxed);
    out->delivered_bytes = c.delivered_bytes.load(std::memory_order_relaxed);
    out->lost_records_seen = c.lost_records_seen.load(std::memory_order_relaxed);
    out->lost_frames_reported = c.lost_frames_reported.load(std::memory_order_relaxed);
    out->invalid_records = c.invalid_records.load(std::memory_order_relaxed);
    out->invalid_bytes = c.invalid_bytes.load(std::memory_order_relaxed);
    out->bad_producer_index = c.bad_producer_index.load(std::memory_order_relaxed);
    const LostMirror& lm = hdr->lost;
    for (int attempt = 0; attempt < 100 && !out->lost_consistent; attempt++) {
      const uint32_t g1 = lm.generation.load(std::memory_order_acquire);
      out->lost_pending_frames = lm.pending_frames.load(std::memory_order_acquire);
      out->lost_pending_bytes = lm.pending_bytes.load(std::memory_order_acquire);
      out->lost_first_seq = lm.first_lost_seq.load(std::memory_order_acquire);
      out->lost_offset = lm.range_offset.load(std::memory_order_acquire);
      out->lost_end = lm.range_end.load(std::memory_order_acquire);
        out->lost_consistent = g1 == lm.generation.load(std::memory_order_relaxed) && g1 % 2 == 0;
    }
  }
  munmap(h, kHeaderBytes);
  return true;
}

}  // namespace dsvmi

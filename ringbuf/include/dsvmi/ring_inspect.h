// Read-only inspection of a ring file (for `dsvmi ring-stat`): maps the
// header read-only, never takes a role, never changes anything.
#pragma once

#include <cstdint>
#include <string>

namespace dsvmi {

struct RingSnapshot {
  // Geometry (valid only if geometry_ok).
  bool geometry_ok = false;
  std::string geometry_error;  // why not
  uint64_t magic = 0;
  uint32_t layout_version = 0;
  uint64_t capacity = 0;
  uint64_t max_record = 0;
  uint64_t creator_pid = 0;
  // Live fields as read now (each side's word, untrusted).
  uint64_t producer_index = 0;
  uint64_t consumer_index = 0;
  bool indices_ok = false;  // producer - consumer within [0, capacity]
  uint64_t produced_frames = 0, produced_bytes = 0, dropped_frames = 0, dropped_bytes = 0;
  uint64_t lost_records = 0, bad_consumer_index = 0;
  uint32_t consumer_pid = 0, consumer_sleeping = 0;
  uint64_t delivered_frames = 0, delivered_bytes = 0, lost_records_seen = 0, lost_frames_reported = 0;
  uint64_t invalid_records = 0, invalid_bytes = 0, bad_producer_index = 0;
  bool lost_consistent = false;
  uint64_t lost_pending_frames = 0, lost_pending_bytes = 0, lost_first_seq = 0, lost_offset = 0, lost_end = 0;
};

// False (with a message) only if the file cannot be opened or mapped; a file
// with a bad header still yields a snapshot with geometry_ok == false.
bool InspectRing(const std::string& path, RingSnapshot* out, std::string* err);

}  // namespace dsvmi

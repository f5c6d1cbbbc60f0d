// dsvmi ring-stat PATH: a ring's geometry, indices, fill, counters and the
// producer's pending lost range, read without disturbing either side.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "usage.h"
#include "dsvmi/ring_inspect.h"
#include "dsvmi/stat_json.h"
#include "json_output.h"

namespace dsvmi::cli {

int cmd_ring_stat(int argc, char** argv) {
  const bool json = take_flag(&argc, argv, "--json");
  if (argc != 1 || argv[0][0] == '-') {
    return usage_exit(wants_help(argc, argv),
                      "usage: dsvmi ring-stat PATH [--json]\n"
                      "Shows a ring's geometry, indices, fill, counters and pending lost range.\n"
                      "Exit status 1 if the header is not a valid dsvmi ring or its indices are out of range.\n"
                      "--json: one JSON object instead (docs/cli-json.md).\n");
  }
  RingSnapshot s;
  std::string err;
  if (!InspectRing(argv[0], &s, &err)) {
    std::fprintf(stderr, "dsvmi ring-stat: %s\n", err.c_str());
    return 1;
  }
  if (json) {
    print_record(ring_snapshot_json(argv[0], s));
    return s.geometry_ok && s.indices_ok ? 0 : 1;
  }
  std::printf("ring %s\n", argv[0]);
  if (!s.geometry_ok) {
    std::printf("header:    INVALID: %s\n", s.geometry_error.c_str());
    return 1;
  }
  std::printf("header:    valid (magic 0x%016" PRIx64 ", layout version %u, created by pid %" PRIu64 ")\n", s.magic,
              s.layout_version, s.creator_pid);
  std::printf("geometry:  capacity %" PRIu64 " bytes, max record %" PRIu64 " bytes\n", s.capacity, s.max_record);
  const uint64_t fill = s.producer_index - s.consumer_index;
  if (s.indices_ok) {
    std::printf("indices:   producer %" PRIu64 ", consumer %" PRIu64 ", fill %" PRIu64 " bytes (%.1f%%)\n",
                s.producer_index, s.consumer_index, fill, 100.0 * static_cast<double>(fill) / s.capacity);
  } else {
    std::printf("indices:   INVALID: producer %" PRIu64 ", consumer %" PRIu64 " (not within one capacity)\n",
                s.producer_index, s.consumer_index);
  }
  std::printf("producer:  produced %" PRIu64 " frames / %" PRIu64 " bytes, dropped %" PRIu64 " frames / %" PRIu64
              " bytes, lost records %" PRIu64 ", bad consumer index seen %" PRIu64 "\n",
              s.produced_frames, s.produced_bytes, s.dropped_frames, s.dropped_bytes, s.lost_records,
              s.bad_consumer_index);
  // The doorbell word (docs/ring.md): 1 naps in 1 ms ticks, 2 is idle (the
  // producer wakes it on the next frame).
  const char* sleeping = s.consumer_sleeping == 0   ? ""
                         : s.consumer_sleeping == 1 ? " (sleeping)"
                         : s.consumer_sleeping == 2 ? " (sleeping, idle)"
                                                    : " (doorbell word invalid)";
  std::printf("consumer:  pid %u%s, delivered %" PRIu64 " frames / %" PRIu64 " bytes, lost records seen %" PRIu64
              " (%" PRIu64 " frames), invalid records %" PRIu64 " (%" PRIu64 " bytes), bad producer index seen %" PRIu64
              "\n",
              s.consumer_pid, sleeping, s.delivered_frames, s.delivered_bytes,
              s.lost_records_seen, s.lost_frames_reported, s.invalid_records, s.invalid_bytes, s.bad_producer_index);
  if (!s.lost_consistent) {
    std::printf("lost:      mirror being written (or corrupt); retry\n");
  } else if (s.lost_pending_frames == 0) {
    std::printf("lost:      none pending\n");
  } else {
    std::printf("lost:      pending %" PRIu64 " frames / %" PRIu64 " bytes from seq %" PRIu64
                ", disk range [%" PRIu64 ", %" PRIu64 ")\n",
                s.lost_pending_frames, s.lost_pending_bytes, s.lost_first_seq, s.lost_offset, s.lost_end);
  }
  return s.indices_ok ? 0 : 1;
}

}  // namespace dsvmi::cli

#include "dsvmi/stat_json.h"

namespace dsvmi {

Json ring_snapshot_json(const std::string& path, const RingSnapshot& s) {
  Json o(Json::Object{});
  o.set("path", path);
  o.set("valid", s.geometry_ok && s.indices_ok);
  if (!s.geometry_ok) {
    o.set("error", s.geometry_error);
    return o;
  }
  o.set("magic", s.magic);
  o.set("layout_version", s.layout_version);
  o.set("creator_pid", s.creator_pid);
  o.set("capacity", s.capacity);
  o.set("max_record", s.max_record);
  o.set("indices_valid", s.indices_ok);
  if (!s.indices_ok) o.set("error", "producer and consumer index are not within one capacity");
  o.set("producer_index", s.producer_index);
  o.set("consumer_index", s.consumer_index);
  o.set("fill_bytes", s.indices_ok ? s.producer_index - s.consumer_index : uint64_t(0));
  o.set("produced_frames", s.produced_frames);
  o.set("produced_bytes", s.produced_bytes);
  o.set("dropped_frames", s.dropped_frames);
  o.set("dropped_bytes", s.dropped_bytes);
  o.set("lost_records", s.lost_records);
  o.set("bad_consumer_index", s.bad_consumer_index);
  o.set("consumer_pid", s.consumer_pid);
  // The doorbell word (docs/ring.md): 0 awake, 1 napping, 2 idle.
  o.set("consumer_sleeping", s.consumer_sleeping);
  o.set("delivered_frames", s.delivered_frames);
  o.set("delivered_bytes", s.delivered_bytes);
  o.set("lost_records_seen", s.lost_records_seen);
  o.set("lost_frames_reported", s.lost_frames_reported);
  o.set("invalid_records", s.invalid_records);
  o.set("invalid_bytes", s.invalid_bytes);
  o.set("bad_producer_index", s.bad_producer_index);
  o.set("lost_consistent", s.lost_consistent);
  o.set("lost_pending_frames", s.lost_pending_frames);
  o.set("lost_pending_bytes", s.lost_pending_bytes);
  o.set("lost_first_seq", s.lost_first_seq);
  o.set("lost_offset", s.lost_offset);
  o.set("lost_end", s.lost_end);
  return o;
}

Json gate_snapshot_json(const std::string& path, const GateSnapshot& s) {
  Json o(Json::Object{});
  o.set("path", path);
  o.set("valid", true);
  o.set("disk_size", s.disk_size);
  o.set("grain_size", s.grain_size);
  o.set("generation", s.generation);
  o.set("slot", s.slot);
  o.set("slots", s.slots);
  o.set("mode", s.generation ? gate_mode_name(s.mode) : "none");
  o.set("set_grains", s.set_grains);
  o.set("set_bytes", s.set_grains * s.grain_size);
  o.set("containers", s.containers);
  o.set("serialized_bytes", s.serialized_bytes);
  o.set("flat_sector_bitmap_bytes", (s.disk_size + 4095) / 4096);
  o.set("file_size", s.file_size);
  if (s.reader_view == UINT64_MAX) {
    o.set("reader_view", Json());
  } else {
    Json v(Json::Object{});
    v.set("generation", s.reader_view >> 8);
    v.set("slot", s.reader_view & 0xff);
    o.set("reader_view", v);
  }
  o.set("writes_passed", s.counters.writes_passed);
  o.set("bytes_passed", s.counters.bytes_passed);
  o.set("writes_dropped", s.counters.writes_dropped);
  o.set("bytes_dropped", s.counters.bytes_dropped);
  o.set("fallbacks", s.counters.fallbacks);
  o.set("rejected_generations", s.counters.rejected);
  o.set("adoptions", s.counters.adoptions);
  if (s.reader_error.empty()) {
    o.set("reader_error", Json());
  } else {
    Json e(Json::Object{});
    e.set("generation", s.error_generation);
    e.set("message", s.reader_error);
    o.set("reader_error", e);
  }
  return o;
}

namespace {
Json unreadable(const std::string& path, const std::string& error) {
  Json o(Json::Object{});
  o.set("path", path);
  o.set("valid", false);
  o.set("error", error);
  return o;
}
}  // namespace

Json ring_stat_json(const std::string& path) {
  RingSnapshot s;
  std::string err;
  if (!InspectRing(path, &s, &err)) return unreadable(path, err);
  return ring_snapshot_json(path, s);
}

Json gate_stat_json(const std::string& path) {
  GateSnapshot s;
  if (Status st = inspect_gate(path, &s); !st) return unreadable(path, st.message());
  return gate_snapshot_json(path, s);
}

}  // namespace dsvmi

// status (what each attachment is doing, docs/daemon-protocol.md) and the
// Prometheus text the metrics file and GET /metrics serve, derived from it.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "daemon_impl.h"
#include "dsvmi/stat_json.h"

namespace dsvmi::daemon_internal {

Json Daemon::status_of(Attachment& a) {
  Json o(Json::Object{});
  o.set("name", a.name);
  o.set("state", state_name(a.state));
  o.set("mode", a.mode);
  o.set("globs", string_array(a.globs));
  o.set("hash", string_array(a.hash.globs));
  o.set("qmp", a.qmp);
  o.set("node", a.node);
  o.set("filter_node", a.filter_node);
  o.set("image", a.image);
  o.set("disk", a.disk);
  o.set("read", a.export_id.empty() ? "file" : "nbd");
  o.set("disk_size", a.disk_size);
  if (a.state == State::Crawling) {
    Json cr(Json::Object{});
    cr.set("fraction", a.crawl.fraction);
    cr.set("file_system", a.crawl.file_system);
    cr.set("seconds", now_s() - a.crawl.started);
    o.set("crawl", cr);
  } else {
    o.set("crawl_seconds", a.crawl.seconds);
  }
  const Child& e = a.engine.child;
  o.set("engine", e.running() ? Json("running") : !e.exited() ? Json("not started") : Json("exited: " + e.exit_text()));
  o.set("engine_pid", int64_t(e.pid()));
  o.set("engine_restarts", a.engine.restarts);
  o.set("policy_generation", a.policy_generation);
  o.set("policy_changes", a.policy_changes);
  o.set("events", a.engine.events);
  o.set("events_per_s", a.engine.events_per_s);
  o.set("catching_up", a.engine.catching_up);
  o.set("suppressed_events", a.engine.suppressed);
  o.set("attached_s", now_s() - a.attached_at);
  Json lat(Json::Object{});
  lat.set("count", a.latency.count);
  lat.set("sum_s", a.latency.sum);
  o.set("latency_observed", lat);
  if (a.engine.last_stats.is_object()) o.set("engine_stats", a.engine.last_stats);
  // Read in this process (read-only mappings, validated): no child per status.
  o.set("gate", gate_stat_json(a.gate));
  Json ring_stat = ring_stat_json(a.ring);
  o.set("ring", ring_stat);
  o.set("gate_at_crawl", a.crawl.gate);
  // The ring's counters under the names the metrics use.
  Json ring(Json::Object{});
  if (const Json* v = ring_stat.get("valid"); v && v->is_bool() && v->as_bool()) {
    ring.set("frames", ring_stat.get_uint64("produced_frames"));
    ring.set("bytes", ring_stat.get_uint64("produced_bytes"));
    ring.set("dropped_frames", ring_stat.get_uint64("dropped_frames"));
    ring.set("dropped_bytes", ring_stat.get_uint64("dropped_bytes"));
    ring.set("lost_records", ring_stat.get_uint64("lost_records"));
    ring.set("lag_bytes", ring_stat.get_uint64("fill_bytes"));
  }
  o.set("ring_counters", ring);
  return o;
}

// Every attachment's status, or only `name`'s (the caller checked it exists).
Json Daemon::status(const std::string& name) {
  Json::Array list;
  for (auto& [n, a] : atts_) {
    if (!name.empty() && name != n) continue;
    if (a.erased()) continue;
    list.push_back(status_of(a));
  }
  return Json(list);
}

namespace {

// Prometheus label values: backslash, quote and newline escaped.
std::string label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string num(double v) {
  if (std::isnan(v)) return "NaN";
  char b[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(b, sizeof b, "%.0f", v);
  else std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

// The metrics read from the status objects (one per attachment).
void status_metrics(const Json& all, std::ostringstream& out) {
  struct Metric {
    const char *name, *type, *help, *object, *key;
  };
  static const Metric kMetrics[] = {
      {"dsvmi_events_total", "counter", "File-level events emitted by the engine.", nullptr, "events"},
      {"dsvmi_events_per_second", "gauge", "Events per second over the last ~2 s.", nullptr, "events_per_s"},
      {"dsvmi_engine_restarts_total", "counter", "Engine restarts (none since policy changes are live).", nullptr, "engine_restarts"},
      {"dsvmi_policy_changes_total", "counter", "Live policy changes the engine applied.", nullptr, "policy_changes"},
      {"dsvmi_suppressed_events_total", "counter", "Events withheld while the engine caught up after attach.", nullptr, "suppressed_events"},
      {"dsvmi_gate_writes_passed_total", "counter", "Guest writes the gate passed into the ring.", "gate", "writes_passed"},
      {"dsvmi_gate_bytes_passed_total", "counter", "Bytes of guest writes the gate passed.", "gate", "bytes_passed"},
      {"dsvmi_gate_writes_dropped_total", "counter", "Guest writes the gate dropped.", "gate", "writes_dropped"},
      {"dsvmi_gate_bytes_dropped_total", "counter", "Bytes of guest writes the gate dropped.", "gate", "bytes_dropped"},
      {"dsvmi_gate_set_bytes", "gauge", "Bytes of the disk the gate passes (set mode).", "gate", "set_bytes"},
      {"dsvmi_ring_frames_total", "counter", "Frames QEMU wrote into the ring.", "ring_counters", "frames"},
      {"dsvmi_ring_bytes_total", "counter", "Bytes QEMU wrote into the ring.", "ring_counters", "bytes"},
      {"dsvmi_ring_dropped_frames_total", "counter", "Frames lost to a full ring.", "ring_counters", "dropped_frames"},
      {"dsvmi_ring_dropped_bytes_total", "counter", "Bytes lost to a full ring.", "ring_counters", "dropped_bytes"},
      {"dsvmi_ring_lost_records_total", "counter", "Lost-range records QEMU wrote (each needs a resync).", "ring_counters", "lost_records"},
      {"dsvmi_ring_lag_bytes", "gauge", "Bytes in the ring the engine has not consumed yet.", "ring_counters", "lag_bytes"},
      {"dsvmi_engine_frames_total", "counter", "Frames the engine consumed (its last stats record).", "engine_stats", "frames"},
      {"dsvmi_engine_write_bytes_total", "counter", "Write bytes the engine consumed (its last stats record).", "engine_stats", "write_bytes"},
      {"dsvmi_engine_resyncs_total", "counter", "Lost records the engine resynced from the disk (its last stats record).", "engine_stats", "lost_records"},
      {"dsvmi_engine_ring_lag_bytes", "gauge", "Ring lag the engine saw at its last stats record.", "engine_stats", "ring_lag_bytes"},
  };
  for (const Metric& m : kMetrics) {
    out << "# HELP " << m.name << " " << m.help << "\n# TYPE " << m.name << " " << m.type << "\n";
    for (const auto& a : all.as_array()) {
      const Json* src = m.object ? a.get(m.object) : &a;
      if (!src || !src->is_object() || !src->get(m.key) || !src->get(m.key)->is_number()) continue;
      out << m.name << "{disk=\"" << label(a.get_string("name")) << "\"} " << num(src->get_number(m.key)) << "\n";
    }
  }
}

// The gauges of state, progress and the engine's own latency quantiles.
void state_metrics(const Json& all, std::ostringstream& out) {
  out << "# HELP dsvmi_engine_up 1 while the disk's engine runs.\n# TYPE dsvmi_engine_up gauge\n";
  for (const auto& a : all.as_array())
    out << "dsvmi_engine_up{disk=\"" << label(a.get_string("name")) << "\"} " << (a.get_string("engine") == "running") << "\n";
  out << "# HELP dsvmi_attachment_state 1 for the attachment's current state.\n# TYPE dsvmi_attachment_state gauge\n";
  for (const auto& a : all.as_array())
    for (const char* s : {"crawling", "starting", "running", "detaching"})
      out << "dsvmi_attachment_state{disk=\"" << label(a.get_string("name")) << "\",state=\"" << s << "\"} "
          << (a.get_string("state") == s) << "\n";
  out << "# HELP dsvmi_crawl_progress_ratio Fraction of the attach crawl done (1 once attached).\n"
         "# TYPE dsvmi_crawl_progress_ratio gauge\n";
  for (const auto& a : all.as_array()) {
    const Json* cr = a.get("crawl");
    out << "dsvmi_crawl_progress_ratio{disk=\"" << label(a.get_string("name")) << "\"} "
        << num(cr ? cr->get_number("fraction") : 1.0) << "\n";
  }
  // Engine-side quantiles of the last stats interval (a gauge per quantile:
  // quantiles of intervals cannot be aggregated, the histogram below can).
  out << "# HELP dsvmi_engine_event_latency_seconds Event latency (emission - frame time) quantiles over the engine's "
         "last stats interval.\n# TYPE dsvmi_engine_event_latency_seconds gauge\n";
  for (const auto& a : all.as_array()) {
    const Json* st = a.get("engine_stats");
    const Json* l = st ? st->get("latency_us") : nullptr;
    if (!l || !l->is_object()) continue;
    for (auto [q, k] : {std::pair{"0.5", "p50"}, std::pair{"0.99", "p99"}, std::pair{"1", "max"}})
      if (l->get(k) && l->get(k)->is_number())
        out << "dsvmi_engine_event_latency_seconds{disk=\"" << label(a.get_string("name")) << "\",quantile=\"" << q
            << "\"} " << num(l->get_number(k) / 1e6) << "\n";
  }
}

}  // namespace

std::string Daemon::metrics_text() {
  Json all = status("");
  std::ostringstream out;
  status_metrics(all, out);
  state_metrics(all, out);
  out << "# HELP dsvmi_event_latency_seconds Event latency (emission - frame time) of every event the daemon "
         "received.\n# TYPE dsvmi_event_latency_seconds histogram\n";
  for (auto& [n, a] : atts_) {
    if (a.erased()) continue;
    std::string d = label(n);
    for (size_t i = 0; i < kNumBuckets; ++i)
      out << "dsvmi_event_latency_seconds_bucket{disk=\"" << d << "\",le=\"" << num(kLatencyBuckets[i]) << "\"} "
          << a.latency.buckets[i] << "\n";
    out << "dsvmi_event_latency_seconds_bucket{disk=\"" << d << "\",le=\"+Inf\"} " << a.latency.count << "\n";
    out << "dsvmi_event_latency_seconds_sum{disk=\"" << d << "\"} " << num(a.latency.sum) << "\n";
    out << "dsvmi_event_latency_seconds_count{disk=\"" << d << "\"} " << a.latency.count << "\n";
  }
  if (opt_.tap) {  // the stream publisher's counters (docs/stream.md, "Metrics")
    Json st = opt_.tap->status();
    if (st.is_object())
      for (const auto& [k, v] : st.as_object()) {
        if (v.is_bool()) out << "dsvmi_stream_" << k << " " << (v.as_bool() ? 1 : 0) << "\n";
        else if (v.is_number()) out << "dsvmi_stream_" << k << " " << num(v.as_number()) << "\n";
      }
  }
  out << "# HELP dsvmi_attachments Attachments the daemon manages.\n# TYPE dsvmi_attachments gauge\n"
      << "dsvmi_attachments " << all.as_array().size() << "\n";
  return out.str();
}

void Daemon::write_metrics() {
  if (opt_.metrics_file.empty()) return;
  std::string tmp = opt_.metrics_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << metrics_text();
  }
  ::rename(tmp.c_str(), opt_.metrics_file.c_str());
}

}  // namespace dsvmi::daemon_internal

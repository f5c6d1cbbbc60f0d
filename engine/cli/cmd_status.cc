// dsvmi status [NAME]: what each attachment is doing (or --json for all of it).
#include <cstdint>
#include <cstdio>
#include <string>

#include "commands.h"
#include "usage.h"
#include "daemon_client.h"

namespace dsvmi::cli {
namespace {

unsigned long long u(uint64_t v) { return v; }

// The ring lines of the human view, from status's "ring" (ring-stat --json).
void print_ring(const Json& r) {
  const Json* valid = r.get("valid");
  if (!valid || !valid->is_bool() || !valid->as_bool()) {
    std::printf("  ring INVALID: %s\n", r.get_string("error", "unreadable").c_str());
    return;
  }
  uint64_t fill = r.get_uint64("fill_bytes"), cap = r.get_uint64("capacity");
  std::printf("  ring indices:   producer %llu, consumer %llu, fill %llu bytes (%.1f%%)\n", u(r.get_uint64("producer_index")),
              u(r.get_uint64("consumer_index")), u(fill), cap ? 100.0 * double(fill) / double(cap) : 0.0);
  std::printf("  ring producer:  produced %llu frames / %llu bytes, dropped %llu frames / %llu bytes, lost records %llu\n",
              u(r.get_uint64("produced_frames")), u(r.get_uint64("produced_bytes")), u(r.get_uint64("dropped_frames")),
              u(r.get_uint64("dropped_bytes")), u(r.get_uint64("lost_records")));
  if (r.get_uint64("lost_pending_frames") == 0) {
    std::printf("  ring lost:      none pending\n");
  } else {
    std::printf("  ring lost:      pending %llu frames / %llu bytes, disk range [%llu, %llu)\n",
                u(r.get_uint64("lost_pending_frames")), u(r.get_uint64("lost_pending_bytes")),
                u(r.get_uint64("lost_offset")), u(r.get_uint64("lost_end")));
  }
}

}  // namespace

int cmd_status(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  Json args(Json::Object{});
  bool json = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a[0] != '-') args.set("name", a);
    else {
      std::fprintf(is_help_arg(a.c_str()) ? stdout : stderr, "usage: dsvmi status [NAME] [--json] [--socket DAEMON]\n");
      return is_help_arg(a.c_str()) ? 0 : 2;
    }
  }
  Json r;
  if (int rc = call_or_report("status", socket, "status", args, &r)) return rc;
  if (json) {
    std::printf("%s\n", r.dump().c_str());
    return 0;
  }
  if (r.as_array().empty()) std::printf("no disks attached\n");
  for (const auto& a : r.as_array()) {
    std::string globs;
    for (const auto& g : a.get("globs")->as_array()) globs += (globs.empty() ? "" : " ") + g.as_string();
    const Json* gate = a.get("gate");
    double disk = a.get_number("disk_size");
    std::printf("%s\n  mode %s, globs: %s\n  node %s -> filter %s, image %s\n", a.get_string("name").c_str(),
                a.get_string("mode").c_str(),
                a.get_string("mode") == "full" ? "(full mode: every file)"
                : globs.empty()                ? "(none: metadata only)"
                                               : globs.c_str(),
                a.get_string("node").c_str(), a.get_string("filter_node").c_str(), a.get_string("image").c_str());
    std::string state = a.get_string("state", "running");
    if (const Json* cr = a.get("crawl"); cr && cr->is_object()) {
      std::printf("  state crawling: file system %lld, %.0f%% after %.1f s (reading %s)\n",
                  (long long)cr->get_number("file_system") + 1, 100 * cr->get_number("fraction"),
                  cr->get_number("seconds"), a.get_string("read", "file").c_str());
    } else {
      std::printf("  state %s (crawl took %.1f s, disk read via %s)\n", state.c_str(), a.get_number("crawl_seconds"),
                  a.get_string("read", "file") == "nbd" ? "QEMU's NBD export" : "the image file");
    }
    std::printf("  engine %s%s, %lld events (%.1f/s), %lld live policy changes, %lld suppressed while catching up\n",
                a.get_string("engine").c_str(), a.get("catching_up") && a.get("catching_up")->as_bool() ? " (catching up)" : "",
                (long long)a.get_number("events"), a.get_number("events_per_s"),
                (long long)a.get_number("policy_changes"), (long long)a.get_number("suppressed_events"));
    if (const Json* st = a.get("engine_stats"); st && st->is_object()) {
      const Json* l = st->get("latency_us");
      if (l && l->is_object() && l->get_number("count") > 0)
        std::printf("  event latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (%lld events, last interval); ring lag %lld bytes, "
                    "%lld lost records resynced\n",
                    l->get_number("p50") / 1000, l->get_number("p99") / 1000, l->get_number("max") / 1000,
                    (long long)l->get_number("count"), (long long)st->get_number("ring_lag_bytes"),
                    (long long)st->get_number("lost_records"));
      else
        std::printf("  event latency: no events in the last interval; ring lag %lld bytes, %lld lost records resynced\n",
                    (long long)st->get_number("ring_lag_bytes"), (long long)st->get_number("lost_records"));
    }
    if (gate && gate->is_object()) {
      double passing = gate->get_string("mode") == "pass-all" ? 1.0 : gate->get_number("set_bytes") / (disk ? disk : 1);
      std::printf("  gate %s, %.2f%% of the disk passes; passed %lld writes / %lld bytes, dropped %lld / %lld\n",
                  gate->get_string("mode").c_str(), 100 * passing, (long long)gate->get_number("writes_passed"),
                  (long long)gate->get_number("bytes_passed"), (long long)gate->get_number("writes_dropped"),
                  (long long)gate->get_number("bytes_dropped"));
    }
    if (const Json* g = a.get("gate_at_crawl"); g && g->is_object())
      std::printf("  why (at crawl): policy %s, %llu grains of %llu bytes set (metadata blocks %llu, data blocks %llu of "
                  "%llu files), generation %llu\n",
                  g->get_string("policy").c_str(), u(g->get_uint64("grains")), u(g->get_uint64("grain_size")),
                  u(g->get_uint64("metadata_blocks")), u(g->get_uint64("data_blocks")),
                  u(g->get_uint64("matched_files")), u(g->get_uint64("generation")));
    if (const Json* ring = a.get("ring"); ring && ring->is_object()) print_ring(*ring);
  }
  return 0;
}

}  // namespace dsvmi::cli

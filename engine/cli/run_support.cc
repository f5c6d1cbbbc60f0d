#include "run_support.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "dsvmi/events.h"
#include "gate_args.h"
#include "policy_file.h"

namespace dsvmi::cli {

Status read_policy_file(const std::string& path, FilePolicy* out) {
  Json j;
  Status s = load_policy_file(path, &j);
  if (!s) return s;
  FilePolicy p;
  if (const Json* m = j.get("mode")) p.mode = m->as_string();
  if (const Json* g = j.get("globs"))
    for (const Json& x : g->as_array()) p.globs.push_back(x.as_string());
  auto text = [](const Json* v) { return v->is_number() ? Json(v->as_number()).dump() : v->as_string(); };
  if (const Json* v = j.get("pending_ttl")) {
    uint64_t secs = 0;
    if (!parse_size(text(v), &secs) || secs > UINT64_MAX / 1000000000ull)
      return Status::error(path + ": pending_ttl out of range");
    p.has_ttl = true;
    p.ttl_ns = secs * 1000000000ull;
  }
  if (const Json* v = j.get("pending_max")) {
    if (!parse_size(text(v), &p.max_bytes)) return Status::error(path + ": pending_max out of range");
    p.has_max = true;
  }
  if (const Json* g = j.get("hash"))
    for (const Json& x : g->as_array()) p.hash_globs.push_back(x.as_string());
  for (auto [key, value, has] : {std::tuple{"hash_max", &p.hash_max, &p.has_hash_max},
                                  std::tuple{"diff_max", &p.diff_max, &p.has_diff_max},
                                  std::tuple{"diff_bytes", &p.diff_bytes, &p.has_diff_bytes}}) {
    const Json* v = j.get(key);
    if (!v) continue;
    if (!parse_size(text(v), value)) return Status::error(path + ": " + key + " out of range");
    *has = true;
  }
  *out = std::move(p);
  return Status::ok();
}

void fold_hash_globs(const std::vector<std::string>& hash_globs, GatePolicy* p) {
  if (hash_globs.empty() || p->kind == GatePolicyKind::PassAll) return;
  p->kind = GatePolicyKind::MetadataAndGlobs;
  for (const std::string& g : hash_globs)
    if (std::find(p->globs.begin(), p->globs.end(), g) == p->globs.end()) p->globs.push_back(g);
}

GatePolicy merge_policy(const ArgPolicy& args, const FilePolicy* file) {
  GatePolicy p;
  if (file == nullptr) {
    if (!args.any) return GatePolicy{GatePolicyKind::PassAll, {}};
    p.globs = args.globs;
    p.kind = args.pass_all ? GatePolicyKind::PassAll
             : p.globs.empty() ? GatePolicyKind::MetadataOnly
                               : GatePolicyKind::MetadataAndGlobs;
    return p;
  }
  p.globs = file->globs;
  for (const std::string& g : args.globs)
    if (std::find(p.globs.begin(), p.globs.end(), g) == p.globs.end()) p.globs.push_back(g);
  if (file->mode == "full" || args.pass_all) {
    p.kind = GatePolicyKind::PassAll;
  } else {
    p.kind = p.globs.empty() ? GatePolicyKind::MetadataOnly : GatePolicyKind::MetadataAndGlobs;
  }
  return p;
}

const char* mode_name(const GatePolicy& p) { return p.kind == GatePolicyKind::PassAll ? "full" : "low-overhead"; }

// Engine status records (docs/events.md, "Engine records"): one JSON object
// per line on the event stream, key "engine", never "event".
void write_record(FILE* out, const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), out);
  std::fputc('\n', out);
  std::fflush(out);
}

void policy_record(FILE* out, uint64_t generation, const Status& s, const GatePolicy& p, const PolicyApplyResult& r) {
  std::string l = "{\"engine\":\"policy\",\"generation\":" + std::to_string(generation) +
                  ",\"ok\":" + (s ? "true" : "false") + ",\"error\":";
  json_string(s ? std::string() : s.message(), &l);
  l += ",\"mode\":\"" + std::string(mode_name(p)) + "\",\"globs\":[";
  for (size_t i = 0; i < p.globs.size(); i++) {
    if (i) l += ",";
    json_string(p.globs[i], &l);
  }
  l += "],\"gate_grains\":" + std::to_string(r.gate_grains) + ",\"gate_mode\":\"" +
       (!r.gate ? "none" : r.gate_pass_all ? "pass-all" : "set") + "\",\"watched_files\":" +
       std::to_string(r.watched_files) + ",\"gate_data_blocks\":" + std::to_string(r.data_blocks) +
       ",\"gate_metadata_blocks\":" + std::to_string(r.metadata_blocks) + "}";
  write_record(out, l);
}

void latency_json(const LatencyHistogram& h, std::string* l) {
  *l += "{\"p50\":" + std::to_string(h.percentile(0.50)) + ",\"p99\":" + std::to_string(h.percentile(0.99)) +
        ",\"max\":" + std::to_string(h.max()) + ",\"count\":" + std::to_string(h.count()) + "}";
}

void run_usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi run (--trace TRACE | --ring PATH) --index INDEX --disk IMAGE\n"
               "                 [--policy metadata|pass-all|glob:PATTERN]... [--gate GATE]\n"
               "                 [--events FILE] [--data] [--state] [--stats] [--pending-ttl SECONDS]\n"
               "                 [--pending-max BYTES] [--policy-file FILE] [--stats-interval SECONDS]\n"
               "                 [--records] [--stats-json FILE] [--hash GLOB]... [--hash-max BYTES]\n"
               "                 [--diff-max BYTES] [--diff-bytes BYTES]\n"
               "Infers file-level events from the frames of a capture trace (or a live ring,\n"
               "until SIGINT/SIGTERM: what the ring holds then is drained first; a second\n"
               "signal ends at once) and writes them as JSON Lines (docs/events.md) to stdout\n"
               "or FILE. INDEX is a crawl of IMAGE as it was when the first frame was written;\n"
               "IMAGE is read for blocks the engine has not seen written.\n"
               "  --policy   which files are watched (modify events; gate data in low-overhead\n"
               "             mode): metadata (none), pass-all (every file, default), glob:PATTERN\n"
               "             (repeatable, e.g. glob:/var/log/**)\n"
               "  --policy-file  a policy file (docs/policy.md: mode, globs, pending_ttl,\n"
               "             pending_max), merged with --policy; re-read on SIGHUP and applied\n"
               "             live (watched files, gate recomputed); a {\"engine\":\"policy\",...}\n"
               "             record reports each attempt (docs/events.md, \"Engine records\")\n"
               "  --stats-interval  live ring: a {\"engine\":\"stats\",...} record every SECONDS\n"
               "  --records  write engine records (ready, policy; docs/events.md) on the event\n"
               "             stream even without --policy-file or --stats-interval\n"
               "  --replay-until  live ring: the producer index where the post-crawl replay\n"
               "             ends (default: the producer index at start); the ready records\n"
               "             mark it\n"
               "  --hash     live ring: a hash event (SHA-256 and Merkle root of the content,\n"
               "             docs/hashes.md) for each file matching GLOB (repeatable) whenever a\n"
               "             consistency point changed it; hashed files are watched\n"
               "  --hash-max  larger files get a hash event with hash_skipped (default 1G)\n"
               "  --diff-max  hashed text files up to this size get a unified diff of each\n"
               "             change in their hash event (default 64K, 0: none); others get the\n"
               "             byte ranges written\n"
               "  --diff-bytes  cut a diff at this many bytes (default 16K)\n"
               "  --gate     keep this gate file (dsvmi gate-create) in step with the file system\n"
               "  --data     put the written bytes (base64) into modify events\n"
               "  --state    at the end, print the engine's tree (one JSON object per path)\n"
               "  --stats    at the end, print the engine's counters to stderr\n"
               "  --stats-json FILE  at the end, write them to FILE as one JSON object\n"
               "             (docs/cli-json.md): what programs read\n"
               "  --no-sandbox  run without the sandbox (default: once its files are open the\n"
               "             engine drops to user dsvmi, keeps only its descriptors, sets\n"
               "             no_new_privs, seccomp allow-list, Landlock; docs/security.md)\n"
               "  --pending-max  memory cap of the pending store (data written before the\n"
               "             metadata that owns it; default 32M): a trace replay must hold one\n"
               "             commit interval's new data, a live run reads evicted data back\n");
}

void print_stats(const InferenceStats& s) {
  std::fprintf(stderr,
               "dsvmi run: frames=%llu writes=%llu write_bytes=%llu flushes=%llu lost_records=%llu seq_gaps=%llu "
               "bad_frames=%llu consistency_points=%llu journal_commits=%llu journal_blocks=%llu "
               "journal_read_back=%llu journal_bad=%llu metadata_writes=%llu inodes_decoded=%llu "
               "data_bytes_attributed=%llu data_read_back=%llu pending_bytes=%llu pending_expired=%llu pending_evicted=%llu "
               "shadow_blocks=%llu disk_block_reads=%llu decode_problems=%llu forced_ops=%llu gate_updates=%llu "
               "events=%llu hash_events=%llu hash_skipped=%llu hash_bytes_read=%llu event_latency_p50_us=%llu event_latency_p99_us=%llu event_latency_max_us=%llu event_latency_count=%llu\n",
               (unsigned long long)s.frames, (unsigned long long)s.writes, (unsigned long long)s.write_bytes,
               (unsigned long long)s.flushes, (unsigned long long)s.lost_records, (unsigned long long)s.seq_gaps,
               (unsigned long long)s.bad_frames, (unsigned long long)s.consistency_points,
               (unsigned long long)s.journal_commits, (unsigned long long)s.journal_blocks_applied,
               (unsigned long long)s.journal_blocks_read_back, (unsigned long long)s.journal_bad_blocks,
               (unsigned long long)s.metadata_block_writes, (unsigned long long)s.inodes_decoded,
               (unsigned long long)s.data_bytes_attributed, (unsigned long long)s.data_blocks_read_back, (unsigned long long)s.pending_bytes,
               (unsigned long long)s.pending_expired, (unsigned long long)s.pending_evicted,
               (unsigned long long)s.shadow_blocks, (unsigned long long)s.disk_block_reads,
               (unsigned long long)s.decode_problems, (unsigned long long)s.forced_ops,
               (unsigned long long)s.gate_updates, (unsigned long long)s.events,
               (unsigned long long)s.hash_events, (unsigned long long)s.hash_skipped, (unsigned long long)s.hash_bytes_read,
               (unsigned long long)s.latency.percentile(0.50), (unsigned long long)s.latency.percentile(0.99),
               (unsigned long long)s.latency.max(), (unsigned long long)s.latency.count());
  if (!s.last_decode_problem.empty()) std::fprintf(stderr, "dsvmi run: last decode problem: %s\n", s.last_decode_problem.c_str());
}

Json stats_json(const InferenceStats& s) {
  Json latency = Json::Object{{"p50", s.latency.percentile(0.50)},
                              {"p99", s.latency.percentile(0.99)},
                              {"max", s.latency.max()},
                              {"count", s.latency.count()}};
  return Json::Object{
      {"run", "stats"},
      {"frames", s.frames},
      {"writes", s.writes},
      {"write_bytes", s.write_bytes},
      {"flushes", s.flushes},
      {"lost_records", s.lost_records},
      {"lost_frames", s.lost_frames},
      {"seq_gaps", s.seq_gaps},
      {"bad_frames", s.bad_frames},
      {"consistency_points", s.consistency_points},
      {"quiet_points", s.quiet_points},
      {"metadata_rereads", s.metadata_rereads},
      {"journal_commits", s.journal_commits},
      {"journal_blocks", s.journal_blocks_applied},
      {"journal_read_back", s.journal_blocks_read_back},
      {"journal_bad", s.journal_bad_blocks},
      {"metadata_writes", s.metadata_block_writes},
      {"inodes_decoded", s.inodes_decoded},
      {"data_bytes_attributed", s.data_bytes_attributed},
      {"data_read_back", s.data_blocks_read_back},
      {"pending_bytes", s.pending_bytes},
      {"pending_blocks", s.pending_blocks},
      {"pending_expired", s.pending_expired},
      {"pending_evicted", s.pending_evicted},
      {"shadow_blocks", s.shadow_blocks},
      {"disk_block_reads", s.disk_block_reads},
      {"decode_problems", s.decode_problems},
      {"last_decode_problem", s.last_decode_problem.empty() ? Json() : Json(s.last_decode_problem)},
      {"forced_ops", s.forced_ops},
      {"gate_updates", s.gate_updates},
      {"events", s.events},
      {"policy_changes", s.policy_changes},
      {"hash_events", s.hash_events},
      {"hash_skipped", s.hash_skipped},
      {"hash_bytes_read", s.hash_bytes_read},
      {"hash_bytes_hashed", s.hash_bytes_hashed},
      {"event_latency_us", std::move(latency)},
  };
}

Status write_stats_json(FILE* f, const std::string& path, const InferenceStats& s) {
  const std::string text = stats_json(s).dump() + "\n";
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written) return Status::error("--stats-json " + path + ": write failed");
  return Status::ok();
}

}  // namespace dsvmi::cli

// What `dsvmi run` (cmd_run.cc) needs besides its loop: the policy it runs
// with (--policy arguments merged with --policy-file), its engine records
// (docs/events.md, "Engine records"), usage, the --stats line and the --stats-json record.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "dsvmi/daemon_json.h"
#include "dsvmi/inference.h"
#include "dsvmi/latency.h"
#include "dsvmi/policy.h"
#include "dsvmi/status.h"

namespace dsvmi::cli {

// The policy: --policy arguments (fixed for the run) merged with
// --policy-file (re-read on SIGHUP): globs are the union; full mode (or
// --policy pass-all) watches every file and opens the gate.
struct ArgPolicy {
  bool any = false, pass_all = false;
  std::vector<std::string> globs;
};
struct FilePolicy {
  std::string mode = "low-overhead";
  std::vector<std::string> globs;
  bool has_ttl = false, has_max = false;
  uint64_t ttl_ns = 0, max_bytes = 0;
  std::vector<std::string> hash_globs;  // read at the start only (docs/hashes.md)
  bool has_hash_max = false, has_diff_max = false, has_diff_bytes = false;
  uint64_t hash_max = 0, diff_max = 0, diff_bytes = 0;
};

Status read_policy_file(const std::string& path, FilePolicy* out);
GatePolicy merge_policy(const ArgPolicy& args, const FilePolicy* file);
const char* mode_name(const GatePolicy& p);
// A hashed file must be watched (its writes pass the gate): the hash globs
// join the policy's globs unless every file is watched already.
void fold_hash_globs(const std::vector<std::string>& hash_globs, GatePolicy* p);

// Engine status records: one JSON object per line on the event stream, key
// "engine", never "event"; flushed at once.
void write_record(FILE* out, const std::string& line);
void policy_record(FILE* out, uint64_t generation, const Status& s, const GatePolicy& p, const PolicyApplyResult& r);
void latency_json(const LatencyHistogram& h, std::string* l);

void run_usage(FILE* out);
void print_stats(const InferenceStats& s);
// --stats-json FILE: the engine's counters as one JSON object (the
// `{"run": "stats"}` record of docs/cli-json.md), written to FILE at the end.
Json stats_json(const InferenceStats& s);
// Writes the counters to f (opened by the caller before the sandbox) and closes it; path names it in errors.
Status write_stats_json(FILE* f, const std::string& path, const InferenceStats& s);

}  // namespace dsvmi::cli

// dsvmi crawl IMAGE|nbd://... [--index OUT] [--direct] [--json]
// Human summary by default; with --json, JSON Lines records (progress,
// summary, gate, error; docs/cli-json.md), which is what the daemon reads.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "dsvmi/crawl.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/sandbox.h"
#include "run_sandbox.h"
#include "dsvmi/index.h"
#include "dsvmi/policy.h"
#include "json_output.h"

namespace dsvmi::cli {
namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi crawl IMAGE|nbd://... [--index OUT] [--direct] [--json] [--no-sandbox]\n"
               "                   [--gate PATH [--policy metadata|glob|pass-all] [--glob PATTERN]...]\n"
               "  Crawls the disk's partitions and file systems and prints a summary.\n"
               "  --index OUT  write the index file (for dsvmi ls/stat and the engine)\n"
               "  --direct     read with O_DIRECT (cold cache; raw images only)\n"
               "  --no-sandbox crawl without the sandbox (default: no_new_privs, seccomp\n"
               "               allow-list, Landlock once the disk is open; docs/security.md)\n"
               "  --json       JSON Lines on stdout instead: progress, summary, gate and error\n"
               "               records (docs/cli-json.md; what dsvmi daemon reads)\n"
               "  --gate PATH  then publish the policy's grains into the gate file PATH\n"
               "               (created if missing; needs --index). Default policy: metadata,\n"
               "               or glob when --glob is given ('**' crosses directories)\n");
}

Json file_system_json(const CrawledFilesystem& fs) {
  Json o(Json::Object{});
  o.set("partition", fs.partition);
  o.set("type", fs.type);
  o.set("offset", fs.offset);
  o.set("size", fs.size);
  o.set("block_size", fs.block_size);
  o.set("uuid", fs.uuid);
  o.set("label", fs.label);
  o.set("inodes", fs.inodes);
  o.set("files", fs.files);
  o.set("directories", fs.directories);
  o.set("metadata_blocks", fs.metadata_blocks);
  o.set("problems", fs.problems);
  o.set("error", fs.status ? Json() : Json(fs.status.message()));
  return o;
}

Json strings_json(const std::vector<std::string>& v) {
  Json::Array a;
  for (const auto& s : v) a.push_back(Json(s));
  return Json(std::move(a));
}

Json summary_json(const CrawlSummary& sum, const std::string& index_path) {
  Json o(Json::Object{});
  o.set("crawl", "summary");
  o.set("disk", sum.disk);
  o.set("disk_size", sum.disk_size);
  o.set("partition_table", partition_scheme_name(sum.table.scheme));
  o.set("warnings", strings_json(sum.table.warnings));
  Json::Array fss;
  for (const auto& fs : sum.filesystems) fss.push_back(file_system_json(fs));
  o.set("file_systems", Json(std::move(fss)));
  o.set("skipped", strings_json(sum.skipped));
  o.set("inodes", sum.inodes);
  o.set("index_bytes", sum.index_bytes);
  o.set("seconds", sum.seconds);
  o.set("index", index_path.empty() ? Json() : Json(index_path));
  return o;
}

struct GatePublished {
  GatePolicyStats stats;
  uint32_t grain_size = 0;
  uint64_t generation = 0;
};

// Publishes the policy's grains into the gate file (created if missing).
Status publish_gate(const CrawlSummary& sum, const std::string& index_path, const std::string& gate_path,
                    const GatePolicy& policy, GatePublished* out) {
  Status s;
  auto idx = Index::open(index_path, &s);
  if (!idx) return s;
  std::unique_ptr<Gate> gate;
  s = access(gate_path.c_str(), F_OK) == 0 ? Gate::open(gate_path, &gate)
                                           : Gate::create(gate_path, {sum.disk_size, 4096, GateMode::kSet}, &gate);
  if (s) s = apply_gate_policy(*idx, policy, *gate, &out->stats);
  if (!s) return s;
  out->grain_size = gate->grain_size();
  out->generation = gate->generation();
  return Status::ok();
}

// The failure of a --json crawl: one error record (and exit status 1).
int json_error(const std::string& message) {
  Json o(Json::Object{});
  o.set("crawl", "error");
  o.set("error", message);
  print_record(o);
  return 1;
}

// Progress as --json records (at most every 200 ms), as a bar on a
// terminal (every 100 ms), or not at all.
std::function<void(size_t, double)> progress_printer(bool json, bool tty) {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  auto due = [last](double fraction, int ms) {
    auto now = std::chrono::steady_clock::now();
    if (fraction < 1.0 && now - *last < std::chrono::milliseconds(ms)) return false;
    *last = now;
    return true;
  };
  if (json)
    return [due](size_t fs, double fraction) {
      if (!due(fraction, 200)) return;
      Json p(Json::Object{});
      p.set("crawl", "progress");
      p.set("file_system", uint64_t(fs));
      p.set("fraction", fraction);
      print_record(p);
    };
  if (tty)
    return [due](size_t fs, double fraction) {
      if (!due(fraction, 100)) return;
      const int width = 40, filled = int(fraction * width + 0.5);
      std::fprintf(stderr, "\rcrawling file system %zu [%.*s%*s] %3d%%", fs + 1, filled,
                   "########################################", width - filled, "", int(fraction * 100 + 0.5));
      if (fraction >= 1.0) std::fprintf(stderr, "\n");
    };
  return {};
}

// The human summary; returns the number of file systems whose crawl failed.
int print_summary_text(const CrawlSummary& sum, const std::string& index_path) {
  std::printf("disk         %s (%llu bytes), partition table: %s\n", sum.disk.c_str(),
              (unsigned long long)sum.disk_size, partition_scheme_name(sum.table.scheme));
  for (const auto& w : sum.table.warnings) std::printf("warning      %s\n", w.c_str());
  int failed = 0;
  for (const auto& fs : sum.filesystems) {
    std::printf("partition %-2u %s at offset %llu, %llu bytes, block %u, uuid %s%s%s\n", fs.partition,
                fs.type.c_str(), (unsigned long long)fs.offset, (unsigned long long)fs.size, fs.block_size,
                fs.uuid.c_str(), fs.label.empty() ? "" : ", label ", fs.label.c_str());
    std::printf("             inodes %llu, files %llu, directories %llu, metadata blocks %llu, problems %llu\n",
                (unsigned long long)fs.inodes, (unsigned long long)fs.files, (unsigned long long)fs.directories,
                (unsigned long long)fs.metadata_blocks, (unsigned long long)fs.problems);
    if (!fs.status) {
      ++failed;
      std::printf("             crawl failed: %s\n", fs.status.message().c_str());
    }
  }
  for (const auto& sk : sum.skipped) std::printf("skipped      %s\n", sk.c_str());
  std::printf("total        %zu file system(s), %llu inodes, index %llu bytes (%.1f bytes/inode), %.3f s\n",
              sum.filesystems.size(), (unsigned long long)sum.inodes, (unsigned long long)sum.index_bytes,
              sum.inodes ? double(sum.index_bytes) / double(sum.inodes) : 0.0, sum.seconds);
  if (!index_path.empty()) std::printf("index        %s\n", index_path.c_str());
  return failed;
}

// The records after a successful --json crawl: summary, then gate (if
// asked), then error if a file system failed (exit status 1, as without --json).
int crawl_json_tail(const CrawlSummary& sum, const std::string& index_path, const std::string& gate_path,
                    const GatePolicy& policy, const std::string& policy_name) {
  print_record(summary_json(sum, index_path));
  if (!gate_path.empty()) {
    GatePublished g;
    if (Status s = publish_gate(sum, index_path, gate_path, policy, &g); !s)
      return json_error("gate " + gate_path + ": " + s.message());
    Json o(Json::Object{});
    o.set("crawl", "gate");
    o.set("path", gate_path);
    o.set("policy", policy_name);
    o.set("grains", g.stats.grains);
    o.set("grain_size", g.grain_size);
    o.set("metadata_blocks", g.stats.metadata_blocks);
    o.set("data_blocks", g.stats.data_blocks);
    o.set("matched_files", g.stats.matched_files);
    o.set("generation", g.generation);
    print_record(o);
  }
  for (const auto& fs : sum.filesystems)
    if (!fs.status) return json_error("partition " + std::to_string(fs.partition) + ": crawl failed: " + fs.status.message());
  return 0;
}

}  // namespace

int cmd_crawl(int argc, char** argv) {
  std::string disk_spec, index_path, gate_path, policy_name;
  std::vector<std::string> globs;
  DiskReaderOptions ro;
  const bool json = take_flag(&argc, argv, "--json");
  const bool sandboxed = take_sandbox_flag(&argc, argv);
  if (sandboxed) close_inherited_fds();
  for (int i = 0; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!std::strcmp(argv[i], "--index") && i + 1 < argc) {
      index_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--gate") && i + 1 < argc) {
      gate_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--policy") && i + 1 < argc) {
      policy_name = argv[++i];
    } else if (!std::strcmp(argv[i], "--glob") && i + 1 < argc) {
      globs.push_back(argv[++i]);
    } else if (!std::strcmp(argv[i], "--direct")) {
      ro.direct_io = true;
    } else if (argv[i][0] == '-' || !disk_spec.empty()) {
      usage(stderr);
      return 2;
    } else {
      disk_spec = argv[i];
    }
  }
  if (disk_spec.empty() || (!gate_path.empty() && index_path.empty())) {
    usage(stderr);
    return 2;
  }
  GatePolicy policy;
  if (policy_name.empty()) policy_name = globs.empty() ? "metadata" : "glob";
  if (!parse_gate_policy(policy_name, &policy.kind)) {
    std::fprintf(stderr, "dsvmi crawl: --policy is metadata, glob or pass-all, not '%s'\n", policy_name.c_str());
    return 2;
  }
  policy.globs = globs;
  Status s;
  auto disk = open_disk(disk_spec, ro, &s);
  if (!disk) {
    if (json) return json_error(s.message());
    std::fprintf(stderr, "dsvmi crawl: %s\n", s.message().c_str());
    return 1;
  }
  // Everything the crawl reads is open: give up the rest (docs/security.md).
  if (sandboxed && !enter_crawl_sandbox(index_path, gate_path, !json)) return json ? json_error("cannot enter the sandbox") : 1;
  CrawlOptions options;
  options.index_path = index_path;
  const bool tty = isatty(STDERR_FILENO);
  options.progress = progress_printer(json, tty);
  CrawlSummary sum;
  s = crawl_disk(*disk, options, &sum);
  if (!s) {
    if (json) return json_error(disk_spec + ": " + s.message());
    std::fprintf(stderr, "%sdsvmi crawl: %s: %s\n", tty ? "\n" : "", disk_spec.c_str(), s.message().c_str());
    return 1;
  }
  if (json) return crawl_json_tail(sum, index_path, gate_path, policy, policy_name);
  const int failed = print_summary_text(sum, index_path);
  if (!gate_path.empty()) {
    GatePublished g;
    if (s = publish_gate(sum, index_path, gate_path, policy, &g); !s) {
      std::fprintf(stderr, "dsvmi crawl: gate %s: %s\n", gate_path.c_str(), s.message().c_str());
      return 1;
    }
    std::printf("gate         %s: policy %s, %llu grains of %u bytes set (metadata blocks %llu, data blocks %llu of %llu files), generation %llu\n",
                gate_path.c_str(), policy_name.c_str(), (unsigned long long)g.stats.grains, g.grain_size,
                (unsigned long long)g.stats.metadata_blocks, (unsigned long long)g.stats.data_blocks,
                (unsigned long long)g.stats.matched_files, (unsigned long long)g.generation);
  }
  return failed ? 1 : 0;
}

}  // namespace dsvmi::cli

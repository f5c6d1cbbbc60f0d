// dsvmi crawl IMAGE|nbd://... [--index OUT] [--direct]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "dsvmi/crawl.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/policy.h"

namespace dsvmi::cli {
namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi crawl IMAGE|nbd://... [--index OUT] [--direct]\n"
               "                   [--gate PATH [--policy metadata|glob|pass-all] [--glob PATTERN]...]\n"
               "  Crawls the disk's partitions and file systems and prints a summary.\n"
               "  --index OUT  write the index file (for dsvmi ls/stat and the engine)\n"
               "  --direct     read with O_DIRECT (cold cache; raw images only)\n"
               "  --progress   print 'progress FS FRACTION' lines to stderr (for dsvmi daemon)\n"
               "  --gate PATH  then publish the policy's grains into the gate file PATH\n"
               "               (created if missing; needs --index). Default policy: metadata,\n"
               "               or glob when --glob is given ('**' crosses directories)\n");
}

}  // namespace

int cmd_crawl(int argc, char** argv) {
  std::string disk_spec, index_path, gate_path, policy_name;
  std::vector<std::string> globs;
  DiskReaderOptions ro;
  bool progress_lines = false;
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
    } else if (!std::strcmp(argv[i], "--progress")) {
      progress_lines = true;
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
    std::fprintf(stderr, "dsvmi crawl: %s\n", s.message().c_str());
    return 1;
  }
  CrawlOptions options;
  options.index_path = index_path;
  const bool tty = isatty(STDERR_FILENO);
  auto last = std::chrono::steady_clock::now();
  if (progress_lines) {
    options.progress = [&](size_t fs, double fraction) {
      auto now = std::chrono::steady_clock::now();
      if (fraction < 1.0 && now - last < std::chrono::milliseconds(200)) return;
      last = now;
      std::fprintf(stderr, "progress %zu %.4f\n", fs, fraction);
      std::fflush(stderr);
    };
  } else if (tty) {
    options.progress = [&](size_t fs, double fraction) {
      auto now = std::chrono::steady_clock::now();
      if (fraction < 1.0 && now - last < std::chrono::milliseconds(100)) return;
      last = now;
      const int width = 40, filled = int(fraction * width + 0.5);
      std::fprintf(stderr, "\rcrawling file system %zu [%.*s%*s] %3d%%", fs + 1, filled,
                   "########################################", width - filled, "", int(fraction * 100 + 0.5));
      if (fraction >= 1.0) std::fprintf(stderr, "\n");
    };
  }
  CrawlSummary sum;
  s = crawl_disk(*disk, options, &sum);
  if (!s) {
    std::fprintf(stderr, "%sdsvmi crawl: %s: %s\n", tty ? "\n" : "", disk_spec.c_str(), s.message().c_str());
    return 1;
  }
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
  if (!gate_path.empty()) {
    auto idx = Index::open(index_path, &s);
    std::unique_ptr<Gate> gate;
    if (idx) {
      s = access(gate_path.c_str(), F_OK) == 0 ? Gate::open(gate_path, &gate)
                                               : Gate::create(gate_path, {sum.disk_size, 4096, GateMode::kSet}, &gate);
    }
    GatePolicyStats st;
    if (s) s = apply_gate_policy(*idx, policy, *gate, &st);
    if (!s) {
      std::fprintf(stderr, "dsvmi crawl: gate %s: %s\n", gate_path.c_str(), s.message().c_str());
      return 1;
    }
    std::printf("gate         %s: policy %s, %llu grains of %u bytes set (metadata blocks %llu, data blocks %llu of %llu files), generation %llu\n",
                gate_path.c_str(), policy_name.c_str(), (unsigned long long)st.grains, gate->grain_size(),
                (unsigned long long)st.metadata_blocks, (unsigned long long)st.data_blocks,
                (unsigned long long)st.matched_files, (unsigned long long)gate->generation());
  }
  return failed ? 1 : 0;
}

}  // namespace dsvmi::cli

// dsvmi bench [--quick] [--micro] [--out DIR] [harness options...]
//   runs the end-to-end overhead benchmarks: execs bench/e2e/run.py (the
//   harness, docs/benchmarks.md) with this build's directory.
// dsvmi bench static-gate --disk IMG --gate PATH [--glob G]... [--index PATH] [--json]
//   crawls IMG and publishes a gate passing its metadata (+ the data of files
//   matching the globs): the harness's low-overhead mode while no engine
//   keeps the gate up to date (a static gate misses blocks that become
//   metadata later; `dsvmi run` maintains it live).
#include <roaring/roaring.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "dsvmi/crawl.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/policy.h"
#include "json_output.h"

namespace dsvmi::cli {

namespace {

void bench_usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi bench [--quick] [--micro] [--out DIR] [harness options]\n"
               "       dsvmi bench static-gate --disk IMG --gate PATH [--glob G]... [--index PATH] [--json]\n"
               "The first form runs bench/e2e/run.py (python3) with this build directory; its\n"
               "options are listed by 'dsvmi bench --help-harness'. The source tree is found\n"
               "through $DSVMI_SOURCE_DIR or the build's CMakeCache.txt.\n");
}

// The build directory: the folder holding this executable (build/dsvmi).
std::string build_dir() {
  std::vector<char> buf(4096);
  ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return ".";
  std::string exe(buf.data(), static_cast<size_t>(n));
  size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "." : exe.substr(0, slash);
}

// CMAKE_HOME_DIRECTORY from <build>/CMakeCache.txt, or "" if unknown.
std::string source_dir(const std::string& build) {
  if (const char* env = std::getenv("DSVMI_SOURCE_DIR"); env && *env) return env;
  std::ifstream cache(build + "/CMakeCache.txt");
  const std::string key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
  for (std::string line; std::getline(cache, line);) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return "";
}

int run_harness(int argc, char** argv) {
  std::string build = build_dir();
  std::string src = source_dir(build);
  if (src.empty()) {
    std::fprintf(stderr, "dsvmi bench: cannot find the source tree (set DSVMI_SOURCE_DIR)\n");
    return 1;
  }
  std::string script = src + "/bench/e2e/run.py";
  if (access(script.c_str(), R_OK) != 0) {
    std::fprintf(stderr, "dsvmi bench: %s: %s\n", script.c_str(), std::strerror(errno));
    return 1;
  }
  std::vector<std::string> args = {"python3", script, "--build-dir", build};
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    args.push_back(a == "--help-harness" ? "--help" : a);
  }
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  // Debian's interpreter first: python3-matplotlib (the plots) is installed for it.
  if (access("/usr/bin/python3", X_OK) == 0) execv("/usr/bin/python3", cargs.data());
  execvp("python3", cargs.data());
  std::fprintf(stderr, "dsvmi bench: cannot run python3: %s\n", std::strerror(errno));
  return 1;
}

int static_gate(int argc, char** argv) {
  const bool json = take_flag(&argc, argv, "--json");
  std::string disk_path, gate_path, index_path;
  GatePolicy policy;
  for (int i = 0; i < argc; i++) {
    std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "dsvmi bench static-gate: %s needs a value\n", arg.c_str());
      return 2;
    }
    if (arg == "--disk") {
      disk_path = argv[++i];
    } else if (arg == "--gate") {
      gate_path = argv[++i];
    } else if (arg == "--index") {
      index_path = argv[++i];
    } else if (arg == "--glob") {
      policy.globs.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "dsvmi bench static-gate: unknown option '%s'\n", arg.c_str());
      return 2;
    }
  }
  if (disk_path.empty() || gate_path.empty()) {
    bench_usage(stderr);
    return 2;
  }
  policy.kind = policy.globs.empty() ? GatePolicyKind::MetadataOnly : GatePolicyKind::MetadataAndGlobs;
  if (index_path.empty()) index_path = gate_path + ".index";

  Status st;
  std::unique_ptr<DiskReader> disk = open_disk(disk_path, DiskReaderOptions{}, &st);
  if (!disk) {
    std::fprintf(stderr, "dsvmi bench static-gate: %s: %s\n", disk_path.c_str(), st.message().c_str());
    return 1;
  }
  CrawlOptions crawl_options;
  crawl_options.index_path = index_path;
  CrawlSummary summary;
  st = crawl_disk(*disk, crawl_options, &summary);
  if (!st.is_ok()) {
    std::fprintf(stderr, "dsvmi bench static-gate: crawl: %s\n", st.message().c_str());
    return 1;
  }
  std::unique_ptr<Index> index = Index::open(index_path, &st);
  if (!index) {
    std::fprintf(stderr, "dsvmi bench static-gate: %s: %s\n", index_path.c_str(), st.message().c_str());
    return 1;
  }
  GateOptions gate_options;
  gate_options.disk_size = summary.disk_size;
  gate_options.mode = GateMode::kSet;
  std::unique_ptr<Gate> gate;
  st = Gate::create(gate_path, gate_options, &gate);
  if (!st.is_ok()) {
    std::fprintf(stderr, "dsvmi bench static-gate: %s: %s\n", gate_path.c_str(), st.message().c_str());
    return 1;
  }
  roaring_bitmap_t* grains = roaring_bitmap_create();
  GatePolicyStats stats;
  st = build_gate_grains(*index, policy, gate->grain_size(), grains, &stats);
  // Copy the grains over as runs of consecutive numbers.
  roaring_uint32_iterator_t* it = roaring_create_iterator(grains);
  uint64_t run_first = 0, run_count = 0;
  while (st.is_ok() && it->has_value) {
    uint64_t g = it->current_value;
    if (run_count && g == run_first + run_count) {
      run_count++;
    } else {
      if (run_count) st = gate->set_grains({run_first, run_count});
      run_first = g;
      run_count = 1;
    }
    roaring_advance_uint32_iterator(it);
  }
  if (st.is_ok() && run_count) st = gate->set_grains({run_first, run_count});
  roaring_free_uint32_iterator(it);
  roaring_bitmap_free(grains);
  if (st.is_ok()) {
    gate->optimize();
    st = gate->publish();
  }
  if (!st.is_ok()) {
    std::fprintf(stderr, "dsvmi bench static-gate: %s\n", st.message().c_str());
    return 1;
  }
  if (json) {
    print_record(Json::Object{{"static_gate", "summary"},
                              {"disk_size", summary.disk_size},
                              {"grain_size", uint64_t(gate->grain_size())},
                              {"grains_set", uint64_t(gate->set_grain_count())},
                              {"grains_total", uint64_t(gate->grain_count())},
                              {"metadata_blocks", uint64_t(stats.metadata_blocks)},
                              {"data_blocks", uint64_t(stats.data_blocks)},
                              {"matched_files", uint64_t(stats.matched_files)}});
    return 0;
  }
  std::printf("static-gate disk_size=%" PRIu64 " grain=%u grains_set=%" PRIu64 " grains_total=%" PRIu64
              " metadata_blocks=%" PRIu64 " data_blocks=%" PRIu64 " matched_files=%" PRIu64 "\n",
              summary.disk_size, gate->grain_size(), gate->set_grain_count(), gate->grain_count(),
              stats.metadata_blocks, stats.data_blocks, stats.matched_files);
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  if (argc >= 1 && (!std::strcmp(argv[0], "-h") || !std::strcmp(argv[0], "--help"))) {
    bench_usage(stdout);
    return 0;
  }
  if (argc >= 1 && !std::strcmp(argv[0], "static-gate")) return static_gate(argc - 1, argv + 1);
  return run_harness(argc, argv);
}

}  // namespace dsvmi::cli

// bench_crawl: crawl time (warm page cache and O_DIRECT), index bytes per
// inode, index open time, resident memory after open and after lazy lookups,
// and per-record lookup costs, for the ext4 images named in
// DSVMI_CRAWL_IMAGES (space-separated; make them with
// bench/make_crawl_image.sh 128000 / 1000000). See docs/index.md.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dsvmi/crawl.h"
#include "dsvmi/index.h"
#include "dsvmi/index_builder.h"

namespace {

using namespace dsvmi;

uint64_t resident_bytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return uint64_t(resident) * uint64_t(sysconf(_SC_PAGESIZE));
}

// Resident bytes of the mapping(s) of `path` (from /proc/self/smaps): what
// the lazy index actually brought into memory.
uint64_t mapping_resident_bytes(const std::string& path) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return 0;
  char line[4096];
  bool in_map = false;
  uint64_t total = 0;
  while (std::fgets(line, sizeof line, f)) {
    std::string l(line);
    if (l.find('-') < 16 && l.find(" ") != std::string::npos && std::isxdigit((unsigned char)l[0]) &&
        l.find(':') != std::string::npos && l.find("kB") == std::string::npos) {
      in_map = l.find(path) != std::string::npos;
    } else if (in_map && l.rfind("Rss:", 0) == 0) {
      total += std::strtoull(l.c_str() + 4, nullptr, 10) * 1024;
    }
  }
  std::fclose(f);
  return total;
}

std::string index_path_for(const std::string& image) { return image + ".dsvx"; }

void BM_Crawl(benchmark::State& state, std::string image, bool direct) {
  DiskReaderOptions ro;
  ro.direct_io = direct;
  CrawlSummary sum;
  for (auto _ : state) {
    Status s;
    auto disk = open_disk(image, ro, &s);
    if (!disk) {
      state.SkipWithError(s.message().c_str());
      return;
    }
    CrawlOptions opt;
    opt.index_path = index_path_for(image);
    if (!(s = crawl_disk(*disk, opt, &sum))) {
      state.SkipWithError(s.message().c_str());
      return;
    }
  }
  state.counters["inodes"] = double(sum.inodes);
  state.counters["index_bytes"] = double(sum.index_bytes);
  state.counters["bytes_per_inode"] = sum.inodes ? double(sum.index_bytes) / double(sum.inodes) : 0;
  uint64_t read = 0;
  for (auto& f : sum.filesystems) read += f.bytes_read;
  state.counters["disk_bytes_read"] = double(read);
}

std::unique_ptr<Index> open_or_skip(benchmark::State& state, const std::string& image) {
  Status s;
  auto idx = Index::open(index_path_for(image), &s);
  if (!idx) state.SkipWithError(("run the crawl benchmark first: " + s.message()).c_str());
  return idx;
}

void BM_Open(benchmark::State& state, std::string image) {
  const uint64_t before = resident_bytes();
  uint64_t after_open = before, after_lookups = before, map_open = 0, map_lookups = 0;
  for (auto _ : state) {
    auto idx = open_or_skip(state, image);
    if (!idx) return;
    benchmark::DoNotOptimize(idx->filesystems().size());
    state.PauseTiming();
    after_open = resident_bytes();
    map_open = mapping_resident_bytes(index_path_for(image));
    // 10000 lazy lookups: only the touched pages of the mapping become resident.
    const FsIndex& f = idx->filesystems()[0];
    std::mt19937_64 rng(1);
    Inode in;
    for (int k = 0; k < 10000; ++k) (void)f.inode(1 + rng() % f.info().inode_count, &in);
    after_lookups = resident_bytes();
    map_lookups = mapping_resident_bytes(index_path_for(image));
    state.ResumeTiming();
  }
  state.counters["rss_open_KiB"] = double(after_open - before) / 1024;
  state.counters["rss_10k_lookups_KiB"] = double(after_lookups - before) / 1024;
  state.counters["index_resident_open_KiB"] = double(map_open) / 1024;
  state.counters["index_resident_10k_lookups_KiB"] = double(map_lookups) / 1024;
}

void BM_InodeLookup(benchmark::State& state, std::string image) {
  auto idx = open_or_skip(state, image);
  if (!idx) return;
  const FsIndex& f = idx->filesystems()[0];
  std::mt19937_64 rng(2);
  Inode in;
  uint64_t found = 0;
  for (auto _ : state) found += bool(f.inode(1 + rng() % f.info().inode_count, &in));
  state.counters["hit_ratio"] = double(found) / double(state.iterations());
}

void BM_PathOfInode(benchmark::State& state, std::string image) {
  auto idx = open_or_skip(state, image);
  if (!idx) return;
  const FsIndex& f = idx->filesystems()[0];
  std::mt19937_64 rng(3);
  std::string p;
  for (auto _ : state) benchmark::DoNotOptimize(f.path(1 + rng() % f.info().inode_count, &p));
}

void BM_BlockOwner(benchmark::State& state, std::string image) {
  auto idx = open_or_skip(state, image);
  if (!idx) return;
  const FsIndex& f = idx->filesystems()[0];
  std::mt19937_64 rng(4);
  BlockOwner o;
  for (auto _ : state) benchmark::DoNotOptimize(f.owner(rng() % f.info().block_count, &o));
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("DSVMI_CRAWL_IMAGES");
  std::istringstream images(env ? env : "");
  std::string image;
  while (images >> image) {
    const std::string name = image.substr(image.find_last_of('/') + 1);
    benchmark::RegisterBenchmark(("crawl_warm/" + name).c_str(), BM_Crawl, image, false)
        ->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
    benchmark::RegisterBenchmark(("crawl_direct/" + name).c_str(), BM_Crawl, image, true)
        ->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
    benchmark::RegisterBenchmark(("open/" + name).c_str(), BM_Open, image)->Unit(benchmark::kMicrosecond)->Iterations(20);
    benchmark::RegisterBenchmark(("inode_lookup/" + name).c_str(), BM_InodeLookup, image);
    benchmark::RegisterBenchmark(("path_of_inode/" + name).c_str(), BM_PathOfInode, image);
    benchmark::RegisterBenchmark(("block_owner/" + name).c_str(), BM_BlockOwner, image);
  }
  if (!env) std::fprintf(stderr, "bench_crawl: set DSVMI_CRAWL_IMAGES (see bench/make_crawl_image.sh)\n");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}

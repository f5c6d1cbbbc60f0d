// bench_hash: the cost of keeping a file's SHA-256 (and Merkle root) current
// after a change (docs/hashes.md), next to what a file-integrity monitor
// does instead: hash the whole file again (the peer: one SHA-256 pass over
// it, the same OpenSSL code ContentHasher uses, so the ratio is the work
// saved, not a library difference). The file is in memory: this measures
// hashing and re-reading, not the disk.
//
// Changes: a 4 KiB append, a 4 KiB write at a random offset, a whole-file
// rewrite; files of 64 MiB and 1 GiB. Counters: bytes read and hashed per
// changed byte.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "dsvmi/content_hash.h"

namespace {

using dsvmi::ChangedRange;
using dsvmi::ContentHasher;
using dsvmi::HashCost;

constexpr uint64_t kChange = 4096;

std::vector<uint8_t>& file_bytes(uint64_t size) {
  static std::vector<uint8_t> buf;
  if (buf.size() < size + 64 * kChange) {
    buf.resize(size + 64 * kChange);
    std::mt19937_64 r(42);
    for (size_t k = 0; k + 8 <= buf.size(); k += 8) {
      uint64_t v = r();
      std::memcpy(&buf[k], &v, 8);
    }
  }
  return buf;
}

dsvmi::ContentReader reader(const std::vector<uint8_t>& b) {
  return [&b](uint64_t off, std::span<uint8_t> out) {
    std::memcpy(out.data(), b.data() + off, out.size());
    return dsvmi::Status::ok();
  };
}

std::unique_ptr<ContentHasher> hashed(uint64_t size, const std::vector<uint8_t>& b) {
  std::unique_ptr<ContentHasher> h;
  if (!ContentHasher::Create(ContentHasher::Options(), &h)) abort();
  HashCost c;
  if (!h->rehash(size, reader(b), &c)) abort();
  return h;
}

void report(benchmark::State& state, const HashCost& total, uint64_t changed) {
  state.counters["read_per_changed_byte"] = double(total.bytes_read) / double(changed);
  state.counters["hashed_per_changed_byte"] = double(total.bytes_hashed) / double(changed);
  state.SetBytesProcessed(int64_t(changed));
}

// Peer: sha256 of the whole file after each change.
void BM_Peer_FullRehash(benchmark::State& state) {
  const uint64_t size = uint64_t(state.range(0)) << 20;
  std::vector<uint8_t>& b = file_bytes(size);
  std::unique_ptr<ContentHasher> h;
  ContentHasher::Options o;
  o.leaf_bytes = 0;  // SHA-256 only: what sha256sum does
  if (!ContentHasher::Create(o, &h)) abort();
  HashCost total;
  uint64_t n = 0;
  for (auto _ : state) {
    if (!h->rehash(size, reader(b), &total)) abort();
    n++;
  }
  report(state, total, n * kChange);
}

void BM_Append4K(benchmark::State& state) {
  const uint64_t size = uint64_t(state.range(0)) << 20;
  std::vector<uint8_t>& b = file_bytes(size);
  auto h = hashed(size, b);
  uint64_t cur = size, n = 0;
  HashCost total;
  for (auto _ : state) {
    if (cur + kChange > b.size()) {
      state.PauseTiming();
      h = hashed(size, b);
      cur = size;
      state.ResumeTiming();
    }
    cur += kChange;
    if (!h->update(cur, {}, reader(b), &total)) abort();
    n++;
  }
  report(state, total, n * kChange);
}

void BM_RandomWrite4K(benchmark::State& state) {
  const uint64_t size = uint64_t(state.range(0)) << 20;
  std::vector<uint8_t>& b = file_bytes(size);
  auto h = hashed(size, b);
  std::mt19937_64 r(7);
  uint64_t n = 0;
  HashCost total;
  for (auto _ : state) {
    const uint64_t off = (r() % (size / kChange)) * kChange;
    b[off] ^= 1;  // the change
    const ChangedRange c{off, kChange};
    if (!h->update(size, std::span<const ChangedRange>(&c, 1), reader(b), &total)) abort();
    n++;
  }
  report(state, total, n * kChange);
}

void BM_WholeRewrite(benchmark::State& state) {
  const uint64_t size = uint64_t(state.range(0)) << 20;
  std::vector<uint8_t>& b = file_bytes(size);
  auto h = hashed(size, b);
  uint64_t n = 0;
  HashCost total;
  for (auto _ : state) {
    b[n % size] ^= 1;
    const ChangedRange c{0, size};
    if (!h->update(size, std::span<const ChangedRange>(&c, 1), reader(b), &total)) abort();
    n++;
  }
  report(state, total, n * size);
}

BENCHMARK(BM_Peer_FullRehash)->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Append4K)->Arg(64)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RandomWrite4K)->Arg(64)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_WholeRewrite)->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

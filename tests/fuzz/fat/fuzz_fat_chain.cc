// libFuzzer: FAT decoding (12/16/32-bit entries) and chain walking. Input:
// one byte choosing the FAT width, then the raw FAT. Every cluster is used as
// a chain start; the walker must claim each cluster at most once in total.
#include <cstddef>
#include <cstdint>

#include "fat_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  dsvmi::fat::Geometry g;
  g.fat_bits = data[0] % 3 == 0 ? 12 : data[0] % 3 == 1 ? 16 : 32;
  const unsigned char* raw = data + 1;
  const size_t length = size - 1;
  const uint64_t entries = uint64_t(length) * 8 / g.fat_bits;
  if (entries < 3) return 0;
  g.cluster_count = uint32_t(std::min<uint64_t>(entries - 2, 1u << 20));
  g.sectors_per_cluster = 1;
  g.first_data_sector = 100;
  dsvmi::fat::FatTable fat;
  fat.decode(g, raw, length);
  uint32_t first = 0;
  (void)fat.compare(raw, length, &first);
  dsvmi::fat::ChainWalker walker(g, fat);
  dsvmi::fat::Chain chain;
  uint64_t claimed = 0;
  for (uint32_t c = 0; c < g.cluster_count + 3; ++c) {
    walker.walk(c, data[0], c, &chain);
    claimed += chain.clusters;
    (void)dsvmi::fat::ChainWalker::describe(chain);
  }
  if (claimed > g.cluster_count) __builtin_trap();
  return 0;
}

// libFuzzer: boot sector and FSInfo decoding. Input: a boot sector, then an
// FSInfo sector; the partition size comes from the first 8 bytes past them.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "bpb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 512) return 0;
  uint64_t partition = 64u << 20;
  if (size >= 1024 + 8) std::memcpy(&partition, data + 1024, 8);
  dsvmi::fat::Geometry g;
  std::vector<std::string> warnings;
  if (!dsvmi::fat::decode_bpb(data, size, partition, &g, &warnings)) return 0;
  // Everything the crawler derives from an accepted geometry must be sane.
  if (g.cluster_count == 0 || g.first_data_sector >= g.total_sectors || g.cluster_size == 0) __builtin_trap();
  if (size >= 1024) dsvmi::fat::decode_fsinfo(data + 512, 512, &g, &warnings);
  (void)dsvmi::fat::serial_text(g.serial);
  return 0;
}

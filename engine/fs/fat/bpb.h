// The FAT boot sector (BIOS Parameter Block) and the FAT32 FSInfo sector:
// decoded, validated, and turned into the geometry every other part of the
// crawler uses. See docs/fat.md for which fields are trusted and why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi::fat {

struct Geometry {
  unsigned fat_bits = 0;          // 12, 16, 32
  uint32_t bytes_per_sector = 0;  // 512..4096, power of two
  uint32_t sectors_per_cluster = 0;
  uint32_t cluster_size = 0;      // bytes
  uint32_t reserved_sectors = 0;
  uint32_t num_fats = 0;
  uint32_t fat_sectors = 0;       // per FAT copy
  uint32_t root_entries = 0;      // FAT12/16 fixed root directory
  uint64_t total_sectors = 0;     // as the BPB claims
  uint64_t root_dir_sector = 0;   // FAT12/16: first sector of the root region
  uint32_t root_dir_sectors = 0;  // FAT12/16: its length
  uint64_t first_data_sector = 0; // cluster 2 starts here
  uint32_t cluster_count = 0;     // data clusters: numbers 2 .. cluster_count + 1
  uint32_t root_cluster = 0;      // FAT32
  uint32_t fsinfo_sector = 0;     // FAT32, 0 if none
  uint32_t backup_boot_sector = 0;// FAT32, 0 if none
  uint32_t active_fat = 0;        // the copy Linux reads (FAT32 mirroring off: ExtFlags)
  bool mirrored = true;           // all copies should be equal
  uint32_t serial = 0;
  std::string label;              // BPB volume label, trailing spaces removed
  // From FSInfo (FAT32), 0xFFFFFFFF when unknown.
  uint32_t fsinfo_free = 0xFFFFFFFF, fsinfo_next = 0xFFFFFFFF;

  uint64_t cluster_sector(uint32_t cluster) const {
    return first_data_sector + uint64_t(cluster - 2) * sectors_per_cluster;
  }
  bool valid_cluster(uint64_t c) const { return c >= 2 && c < uint64_t(cluster_count) + 2; }
};

// Decodes and validates boot sector `b` (at least 512 bytes) for a partition
// of `partition_bytes`. Errors name the field. Damage that Linux tolerates is
// appended to `warnings`: a BPB claiming more sectors than the partition
// holds (the cluster count is then limited to what the partition holds, so
// memory follows the real size).
Status decode_bpb(const unsigned char* b, size_t length, uint64_t partition_bytes, Geometry* g,
                  std::vector<std::string>* warnings);

// Checks FSInfo sector `s` (bytes_per_sector bytes) and fills fsinfo_*;
// problems go to `warnings` (Linux only warns about them too).
void decode_fsinfo(const unsigned char* s, size_t length, Geometry* g, std::vector<std::string>* warnings);

// "1234-ABCD", as blkid and mtools show the volume serial number.
std::string serial_text(uint32_t serial);

}  // namespace dsvmi::fat

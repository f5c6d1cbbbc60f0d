// Partition tables: MBR (with extended/logical chains), GPT (header and entry
// array CRCs checked, backup header used when the primary is damaged) and a
// bare file system on the whole disk. Every partition is recorded with what
// it holds (probe_filesystem); callers crawl the ones they understand and skip
// swap and unknown ones.
//
// Everything read is untrusted: chains are loop- and count-limited, entry
// arrays are size-capped, and a damaged table yields a Status naming the
// problem or a table with warnings describing what was worked around.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsvmi/disk_reader.h"
#include "dsvmi/status.h"

namespace dsvmi {

enum class PartitionScheme : uint8_t {
  Whole = 0,  // no partition table: one file system (or nothing known) on the whole disk
  Mbr = 1,
  Gpt = 2,
};

struct Partition {
  uint32_t number = 0;      // as Linux numbers them: MBR 1-4, logicals 5+, GPT entry index + 1; whole disk 0
  uint64_t offset = 0;      // bytes from the disk start
  uint64_t size = 0;        // bytes
  uint8_t mbr_type = 0;     // MBR type byte (0 for GPT and whole disk)
  bool logical = false;     // an MBR logical partition (inside an extended one)
  std::string type_guid;    // GPT partition type GUID, lower-case canonical text
  std::string unique_guid;  // GPT unique partition GUID
  std::string name;         // GPT partition name (UTF-8)
  std::string filesystem;   // what probe_filesystem found: "ext2/3/4", "swap", "vfat", "ntfs", "" unknown
};

struct PartitionTable {
  PartitionScheme scheme = PartitionScheme::Whole;
  uint32_t sector_size = 512;
  std::string disk_guid;  // GPT only
  std::vector<Partition> partitions;
  // Damage worked around, e.g. "gpt: primary header CRC mismatch; using the backup header at LBA 2047".
  std::vector<std::string> warnings;
};

// Limits that keep hostile tables bounded.
inline constexpr uint32_t kMaxLogicalPartitions = 128;
inline constexpr uint64_t kMaxGptEntryArrayBytes = 1u << 20;

Status read_partition_table(DiskReader& disk, PartitionTable* table);

// What a byte range of the disk holds, from its signatures: "ext2", "ext3",
// "ext4", "swap", "vfat", "ntfs", or "" when nothing known is found.
std::string probe_filesystem(DiskReader& disk, uint64_t offset, uint64_t size);

const char* partition_scheme_name(PartitionScheme scheme);

}  // namespace dsvmi

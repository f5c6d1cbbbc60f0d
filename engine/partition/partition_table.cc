// read_partition_table: decides what the disk starts with, then hands off to
// the MBR or GPT reader, and finally probes what every partition holds.
#include <vector>

#include "little_endian.h"
#include "partition_internal.h"

namespace dsvmi {
namespace {
using partition_detail::u8;

// A sector 0 whose partition entries are plausible: every status byte 0x00 or
// 0x80, at least one non-empty entry. A FAT/NTFS boot sector (also ending in
// 0x55AA) fails this or is caught earlier by probe_filesystem.
bool plausible_mbr(std::span<const std::byte> s) {
  bool any = false;
  for (int i = 0; i < 4; i++) {
    const std::byte* e = s.data() + 446 + 16 * i;
    uint8_t status = u8(e);
    if (status != 0x00 && status != 0x80) return false;
    if (u8(e + 4) != 0 && partition_detail::le32(e + 12) != 0) any = true;
  }
  return any;
}

bool has_protective_entry(std::span<const std::byte> s) {
  for (int i = 0; i < 4; i++) {
    if (u8(s.data() + 446 + 16 * i + 4) == 0xEE) return true;
  }
  return false;
}

}  // namespace

Status read_partition_table(DiskReader& disk, PartitionTable* table) {
  *table = PartitionTable{};
  if (disk.size() < 512) {
    return Status::error("partition: disk of " + std::to_string(disk.size()) +
                         " bytes is smaller than one sector");
  }
  std::vector<std::byte> sector0(512);
  Status s = disk.read(0, sector0);
  if (!s) return s;
  bool signature = u8(&sector0[510]) == 0x55 && u8(&sector0[511]) == 0xAA;
  std::string whole_fs = probe_filesystem(disk, 0, disk.size());

  if (signature && has_protective_entry(sector0)) {
    table->scheme = PartitionScheme::Gpt;
    s = partition_detail::read_gpt(disk, table);
  } else if (signature && whole_fs.empty() && plausible_mbr(sector0)) {
    table->scheme = PartitionScheme::Mbr;
    s = partition_detail::read_mbr(disk, sector0, table);
  } else {
    table->scheme = PartitionScheme::Whole;
    Partition p;
    p.number = 0;
    p.offset = 0;
    p.size = disk.size();
    p.filesystem = whole_fs;
    if (whole_fs.empty()) table->warnings.push_back("partition: no partition table and no known file system");
    table->partitions.push_back(std::move(p));
    return Status::ok();
  }
  if (!s) return s;
  for (Partition& p : table->partitions) {
    if (p.offset >= disk.size()) {
      table->warnings.push_back("partition " + std::to_string(p.number) + ": starts at byte " +
                                std::to_string(p.offset) + ", past the end of the disk");
      continue;
    }
    if (p.size > disk.size() - p.offset) {
      table->warnings.push_back("partition " + std::to_string(p.number) + ": ends past the end of the disk (truncated?)");
    }
    p.filesystem = probe_filesystem(disk, p.offset, p.size);
  }
  return Status::ok();
}

}  // namespace dsvmi

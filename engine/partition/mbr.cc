// MBR: four primary entries; an extended entry starts a chain of EBRs, each
// holding one logical partition (relative to that EBR) and a link to the next
// EBR (relative to the extended partition's start). The chain is untrusted:
// visited EBRs are remembered (loops end it) and at most
// kMaxLogicalPartitions logical partitions are read.
#include <algorithm>
#include <set>
#include <vector>

#include "little_endian.h"
#include "partition_internal.h"

namespace dsvmi::partition_detail {
namespace {

struct MbrEntry {
  uint8_t type;
  uint32_t start;  // sectors
  uint32_t count;  // sectors
  bool empty() const { return type == 0 || count == 0; }
  bool extended() const { return type == 0x05 || type == 0x0F || type == 0x85; }
};

MbrEntry entry_at(std::span<const std::byte> sector, int i) {
  const std::byte* e = sector.data() + 446 + 16 * i;
  return MbrEntry{u8(e + 4), le32(e + 8), le32(e + 12)};
}

void read_logical_chain(DiskReader& disk, uint64_t ext_start, uint64_t ext_count, PartitionTable* t) {
  std::set<uint64_t> visited;
  std::vector<std::byte> ebr(512);
  uint64_t current = ext_start;
  uint32_t next_number = 5;
  for (uint32_t n = 0;; n++) {
    if (n >= kMaxLogicalPartitions) {
      t->warnings.push_back("mbr: more than " + std::to_string(kMaxLogicalPartitions) +
                            " EBRs in the extended partition chain; stopped");
      return;
    }
    if (!visited.insert(current).second) {
      t->warnings.push_back("mbr: extended partition chain loops back to the EBR at sector " +
                            std::to_string(current) + "; stopped");
      return;
    }
    if (current >= disk.size() / 512) {
      t->warnings.push_back("mbr: EBR at sector " + std::to_string(current) + " is past the end of the disk");
      return;
    }
    if (!disk.read(current * 512, ebr)) {
      t->warnings.push_back("mbr: cannot read the EBR at sector " + std::to_string(current));
      return;
    }
    if (u8(&ebr[510]) != 0x55 || u8(&ebr[511]) != 0xAA) {
      t->warnings.push_back("mbr: EBR at sector " + std::to_string(current) + " has no 0x55AA signature");
      return;
    }
    MbrEntry data = entry_at(ebr, 0);
    MbrEntry link = entry_at(ebr, 1);
    if (!data.empty() && !data.extended()) {
      Partition p;
      p.number = next_number++;
      p.logical = true;
      p.mbr_type = data.type;
      uint64_t first = current + data.start;
      p.offset = first * 512;
      p.size = uint64_t{data.count} * 512;
      if (first + data.count > ext_start + ext_count) {
        t->warnings.push_back("mbr: logical partition " + std::to_string(p.number) +
                              " extends past its extended partition");
      }
      t->partitions.push_back(std::move(p));
    }
    if (link.empty() || !link.extended()) return;
    current = ext_start + link.start;
  }
}

}  // namespace

Status read_mbr(DiskReader& disk, std::span<const std::byte> sector0, PartitionTable* t) {
  t->sector_size = 512;
  bool extended_seen = false;
  for (int i = 0; i < 4; i++) {
    MbrEntry e = entry_at(sector0, i);
    if (e.empty()) continue;
    if (e.extended()) {
      if (extended_seen) {
        t->warnings.push_back("mbr: more than one extended partition; ignoring entry " + std::to_string(i + 1));
        continue;
      }
      extended_seen = true;
      read_logical_chain(disk, e.start, e.count, t);
      continue;
    }
    Partition p;
    p.number = static_cast<uint32_t>(i + 1);
    p.mbr_type = e.type;
    p.offset = uint64_t{e.start} * 512;
    p.size = uint64_t{e.count} * 512;
    t->partitions.push_back(std::move(p));
  }
  // Logical partitions were appended in chain order; keep primaries first.
  std::stable_sort(t->partitions.begin(), t->partitions.end(),
                   [](const Partition& a, const Partition& b) { return a.number < b.number; });
  return Status::ok();
}

}  // namespace dsvmi::partition_detail

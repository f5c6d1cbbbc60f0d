// File-system signatures, as blkid checks them (a subset: what dsvmi crawls
// or must know to skip).
#include <cstring>
#include <vector>

#include "dsvmi/partition.h"
#include "little_endian.h"

namespace dsvmi {
namespace {
using partition_detail::le16;
using partition_detail::le32;
using partition_detail::u8;

bool bytes_equal(const std::vector<std::byte>& b, size_t at, const char* text) {
  size_t n = std::strlen(text);
  return at + n <= b.size() && std::memcmp(b.data() + at, text, n) == 0;
}

// ext2/ext3/ext4 by the same rule as blkid: any feature beyond ext3's makes it
// ext4; a journal without them makes it ext3.
std::string ext_flavor(const std::byte* sb) {
  uint32_t compat = le32(sb + 0x5C), incompat = le32(sb + 0x60), ro_compat = le32(sb + 0x64);
  const uint32_t ext3_incompat = 0x2 | 0x4 | 0x8 | 0x10;  // filetype, recover, journal_dev, meta_bg
  const uint32_t ext3_ro_compat = 0x1 | 0x2 | 0x4;        // sparse_super, large_file, btree_dir
  if ((incompat & ~ext3_incompat) != 0 || (ro_compat & ~ext3_ro_compat) != 0) return "ext4";
  return (compat & 0x4) ? "ext3" : "ext2";
}

}  // namespace

std::string probe_filesystem(DiskReader& disk, uint64_t offset, uint64_t size) {
  if (offset > disk.size()) return "";
  uint64_t avail = disk.size() - offset;
  if (size > avail) size = avail;
  uint64_t want = size < 65536 ? size : 65536;
  if (want < 512) return "";
  std::vector<std::byte> b(want);
  if (!disk.read(offset, b)) return "";
  if (b.size() >= 2048 && le16(b.data() + 1024 + 0x38) == 0xEF53) return ext_flavor(b.data() + 1024);
  for (size_t page : {size_t{4096}, size_t{8192}, size_t{16384}, size_t{65536}}) {
    if (bytes_equal(b, page - 10, "SWAPSPACE2") || bytes_equal(b, page - 10, "SWAP-SPACE")) return "swap";
  }
  if (bytes_equal(b, 3, "NTFS    ")) return "ntfs";
  bool boot_sig = u8(b.data() + 510) == 0x55 && u8(b.data() + 511) == 0xAA;
  bool jump = u8(b.data()) == 0xEB || u8(b.data()) == 0xE9;
  if (boot_sig && jump &&
      (bytes_equal(b, 0x36, "FAT12   ") || bytes_equal(b, 0x36, "FAT16   ") ||
       bytes_equal(b, 0x36, "FAT     ") || bytes_equal(b, 0x52, "FAT32   "))) {
    uint16_t bytes_per_sector = le16(b.data() + 11);
    uint8_t fats = u8(b.data() + 16);
    if (bytes_per_sector >= 512 && bytes_per_sector <= 4096 &&
        (bytes_per_sector & (bytes_per_sector - 1)) == 0 && fats >= 1 && fats <= 4) {
      return "vfat";
    }
  }
  return "";
}

const char* partition_scheme_name(PartitionScheme scheme) {
  switch (scheme) {
    case PartitionScheme::Whole: return "whole-disk";
    case PartitionScheme::Mbr: return "mbr";
    case PartitionScheme::Gpt: return "gpt";
  }
  return "?";
}

}  // namespace dsvmi

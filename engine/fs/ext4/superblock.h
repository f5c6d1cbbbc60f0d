// The superblock, decoded and checked into the geometry the crawler trusts.
#pragma once

#include <cstdint>
#include <string>

#include "dsvmi/status.h"

namespace dsvmi::ext4 {

struct Superblock {
  uint32_t block_size = 0;
  uint32_t log_block_size = 0;     // block_size = 1024 << log_block_size
  uint64_t blocks_count = 0;
  uint32_t first_data_block = 0;   // 1 for 1 KiB blocks, else 0
  uint32_t blocks_per_group = 0;
  uint32_t inodes_per_group = 0;
  uint32_t inodes_count = 0;
  uint32_t inode_size = 0;
  uint32_t first_ino = 0;
  uint32_t desc_size = 0;
  uint64_t group_count = 0;
  uint32_t reserved_gdt_blocks = 0;
  uint32_t first_meta_bg = 0;
  uint32_t journal_inum = 0;
  uint32_t backup_bgs[2] = {0, 0};  // sparse_super2
  uint32_t compat = 0, incompat = 0, ro_compat = 0;
  uint32_t csum_seed = 0;          // metadata_csum seed (from uuid or s_checksum_seed)
  unsigned char uuid[16] = {};
  std::string uuid_text;
  std::string label;
  std::string flavor;              // "ext2", "ext3", "ext4"

  bool metadata_csum() const { return (ro_compat & 0x400) != 0; }
  bool group_csum() const { return (ro_compat & (0x10 | 0x400)) != 0; }  // uninit_bg flags are trusted
  bool has_super(uint64_t group) const;
  uint64_t group_first_block(uint64_t group) const {
    return first_data_block + group * uint64_t{blocks_per_group};
  }
  uint64_t inode_table_blocks() const {
    return (uint64_t{inodes_per_group} * inode_size + block_size - 1) / block_size;
  }
  uint64_t classic_gdt_blocks() const;  // descriptor blocks before meta_bg takes over
};

// Decodes the 1024-byte superblock. fs_bytes: the partition's size, used to
// reject geometry the partition cannot hold. A mismatching checksum is not an
// error; *checksum_ok reports it.
Status decode_superblock(const unsigned char* raw, uint64_t fs_bytes, Superblock* sb, bool* checksum_ok);

}  // namespace dsvmi::ext4

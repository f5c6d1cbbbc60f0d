#include "superblock.h"

#include <cstdio>
#include <cstring>

#include "crc32c.h"
#include "ext4_format.h"

namespace dsvmi::ext4 {
namespace {

bool is_power_of(uint64_t n, uint64_t base) {
  if (n == 0) return false;
  while (n % base == 0) n /= base;
  return n == 1;
}

std::string uuid_to_text(const unsigned char* u) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return buf;
}

}  // namespace

bool Superblock::has_super(uint64_t group) const {
  if (group == 0) return true;
  if (compat & kCompatSparseSuper2) return group == backup_bgs[0] || group == backup_bgs[1];
  if (group <= 1 || !(ro_compat & kRoCompatSparseSuper)) return true;
  if (!(group & 1)) return false;
  return is_power_of(group, 3) || is_power_of(group, 5) || is_power_of(group, 7);
}

uint64_t Superblock::classic_gdt_blocks() const {
  uint64_t per_block = block_size / desc_size;
  uint64_t all = (group_count + per_block - 1) / per_block;
  if ((incompat & kIncompatMetaBg) && first_meta_bg < all) return first_meta_bg;
  return all;
}

Status decode_superblock(const unsigned char* s, uint64_t fs_bytes, Superblock* sb, bool* checksum_ok) {
  *sb = Superblock{};
  if (le16(s + 0x38) != kMagic) return Status::error("ext4: no superblock magic 0xEF53 at byte 1024");
  sb->log_block_size = le32(s + 0x18);
  if (sb->log_block_size > 6) {
    return Status::error("ext4: superblock: block size 2^(10+" + std::to_string(sb->log_block_size) +
                         ") is out of range (1 KiB - 64 KiB)");
  }
  sb->block_size = 1024u << sb->log_block_size;
  sb->compat = le32(s + 0x5C);
  sb->incompat = le32(s + 0x60);
  sb->ro_compat = le32(s + 0x64);
  if (sb->incompat & kIncompatJournalDev) {
    return Status::error("ext4: superblock: this is an external journal device, not a file system");
  }
  sb->inodes_count = le32(s + 0x00);
  sb->blocks_count = le32(s + 0x04);
  if (sb->incompat & kIncompat64bit) sb->blocks_count |= uint64_t{le32(s + 0x150)} << 32;
  sb->first_data_block = le32(s + 0x14);
  sb->blocks_per_group = le32(s + 0x20);
  sb->inodes_per_group = le32(s + 0x28);
  uint32_t rev = le32(s + 0x4C);
  sb->inode_size = rev == 0 ? 128 : le16(s + 0x58);
  sb->first_ino = rev == 0 ? 11 : le32(s + 0x54);
  sb->desc_size = (sb->incompat & kIncompat64bit) ? le16(s + 0xFE) : 32;
  sb->reserved_gdt_blocks = le16(s + 0xCE);
  sb->first_meta_bg = le32(s + 0x104);
  sb->journal_inum = le32(s + 0xE0);
  sb->backup_bgs[0] = le32(s + 0x24C);
  sb->backup_bgs[1] = le32(s + 0x250);
  const uint32_t bs = sb->block_size;

  auto bad = [](const std::string& what) { return Status::error("ext4: superblock: " + what); };
  if (sb->blocks_per_group == 0 || sb->blocks_per_group > 8u * bs) {
    return bad("blocks per group " + std::to_string(sb->blocks_per_group) + " is out of range (1-" +
               std::to_string(8u * bs) + ")");
  }
  if (sb->inodes_per_group == 0 || sb->inodes_per_group > 8u * bs) {
    return bad("inodes per group " + std::to_string(sb->inodes_per_group) + " is out of range (1-" +
               std::to_string(8u * bs) + ")");
  }
  if (sb->inode_size < 128 || sb->inode_size > bs || (sb->inode_size & (sb->inode_size - 1)) != 0) {
    return bad("inode size " + std::to_string(sb->inode_size) + " is invalid");
  }
  if (sb->desc_size < 32 || sb->desc_size > 1024 || (sb->desc_size & (sb->desc_size - 1)) != 0 ||
      sb->desc_size > bs) {
    return bad("group descriptor size " + std::to_string(sb->desc_size) + " is invalid");
  }
  if (sb->first_data_block != (bs == 1024 ? 1u : 0u) && sb->first_data_block != 0) {
    return bad("first data block " + std::to_string(sb->first_data_block) + " is invalid");
  }
  if (sb->blocks_count <= sb->first_data_block) {
    return bad("block count " + std::to_string(sb->blocks_count) + " is too small");
  }
  if (sb->first_ino < 11 || sb->first_ino > sb->inodes_count) {
    return bad("first non-reserved inode " + std::to_string(sb->first_ino) + " is invalid");
  }
  // A file system larger than its partition is read as far as the disk goes
  // (the crawler reports the rest), but geometry the disk cannot possibly
  // hold (e.g. 2^40 blocks on a 1 GiB disk) is rejected: it would make the
  // group arrays unbounded.
  uint64_t disk_blocks = fs_bytes / bs;
  sb->group_count = (sb->blocks_count - sb->first_data_block + sb->blocks_per_group - 1) / sb->blocks_per_group;
  uint64_t disk_groups = (disk_blocks + sb->blocks_per_group - 1) / sb->blocks_per_group + 1;
  if (sb->group_count > 2 * disk_groups + 16) {
    return bad("block count " + std::to_string(sb->blocks_count) + " (" + std::to_string(sb->group_count) +
               " groups) is far beyond the partition's " + std::to_string(disk_blocks) + " blocks");
  }
  if (uint64_t{sb->inodes_count} > sb->group_count * sb->inodes_per_group) {
    return bad("inode count " + std::to_string(sb->inodes_count) + " exceeds groups x inodes per group");
  }
  if (sb->inodes_count < sb->inodes_per_group * (sb->group_count - 1)) {
    return bad("inode count " + std::to_string(sb->inodes_count) + " is too small for " +
               std::to_string(sb->group_count) + " groups");
  }
  std::memcpy(sb->uuid, s + 0x68, 16);
  sb->uuid_text = uuid_to_text(sb->uuid);
  const char* name = reinterpret_cast<const char*>(s + 0x78);
  size_t n = 0;
  while (n < 16 && name[n] != '\0') n++;
  sb->label.assign(name, n);

  const uint32_t ext3_incompat = kIncompatFiletype | kIncompatRecover | kIncompatJournalDev | kIncompatMetaBg;
  const uint32_t ext3_ro_compat = 0x1 | 0x2 | 0x4;
  if ((sb->incompat & ~ext3_incompat) != 0 || (sb->ro_compat & ~ext3_ro_compat) != 0) {
    sb->flavor = "ext4";
  } else {
    sb->flavor = (sb->compat & kCompatHasJournal) ? "ext3" : "ext2";
  }

  *checksum_ok = true;
  if (sb->metadata_csum()) {
    sb->csum_seed = (sb->incompat & kIncompatCsumSeed) ? le32(s + 0x270) : crc32c_update(~0u, sb->uuid, 16);
    *checksum_ok = crc32c_update(~0u, s, 0x3FC) == le32(s + 0x3FC);
  }
  return Status::ok();
}

}  // namespace dsvmi::ext4

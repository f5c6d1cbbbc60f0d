#include "dsvmi/fs_identity.h"

#include <array>
#include <cstdio>
#include <cstring>

namespace dsvmi {
namespace {

uint16_t le16(const std::byte* p) { return uint16_t(uint8_t(p[0]) | uint8_t(p[1]) << 8); }
uint32_t le32(const std::byte* p) { return uint32_t(le16(p)) | uint32_t(le16(p + 2)) << 16; }
uint64_t le64(const std::byte* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }

std::string uuid_text(const std::byte* p) {
  char buf[40];
  int n = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) buf[n++] = '-';
    n += std::snprintf(buf + n, sizeof buf - n, "%02x", unsigned(uint8_t(p[i])));
  }
  return std::string(buf, n);
}

// FAT has no write time or mount count. What changes when the volume is
// re-formatted, resized, mounted or written: the serial number, the sector
// count, the BPB state byte (Linux sets its dirty bit while mounted) and, on
// FAT32, FSInfo's free count and next-free hint (docs/fat.md).
Status read_fat_identity(DiskReader& disk, uint64_t partition_offset, FsIdentity* out) {
  std::array<std::byte, 512> b;
  if (partition_offset > disk.size() || disk.size() - partition_offset < b.size())
    return Status::error("file system at offset " + std::to_string(partition_offset) +
                         " lies beyond the end of the disk");
  Status s = disk.read(partition_offset, b);
  if (!s) return s;
  if (uint8_t(b[510]) != 0x55 || uint8_t(b[511]) != 0xAA)
    return Status::error("no FAT boot sector at offset " + std::to_string(partition_offset));
  const uint32_t bytes_per_sector = le16(&b[11]);
  const bool fat32 = le16(&b[22]) == 0;
  const uint32_t total16 = le16(&b[19]);
  *out = FsIdentity{};
  out->block_count = total16 ? total16 : le32(&b[32]);
  const size_t ext = fat32 ? 64 : 36;  // drive number, state byte, 0x29, serial
  if (uint8_t(b[ext + 2]) == 0x29) {
    const uint32_t serial = le32(&b[ext + 3]);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04X-%04X", unsigned(serial >> 16), unsigned(serial & 0xFFFF));
    out->uuid = buf;
  } else {
    out->uuid = "0000-0000";
  }
  out->mount_time = uint8_t(b[ext + 1]);
  const uint32_t fsinfo = fat32 ? le16(&b[48]) : 0;
  if (fat32 && fsinfo != 0 && fsinfo != 0xFFFF && bytes_per_sector >= 512 && bytes_per_sector <= 4096) {
    const uint64_t at = partition_offset + uint64_t(fsinfo) * bytes_per_sector;
    if (at <= disk.size() && disk.size() - at >= b.size() && disk.read(at, b) && le32(&b[0]) == 0x41615252) {
      out->free_blocks = le32(&b[488]);
      out->free_inodes = le32(&b[492]);
    }
  }
  return Status::ok();
}

// NTFS: the volume serial number and size from the boot sector, and the
// update sequence numbers of File Records 0-3 ($MFT, $MFTMirr, $LogFile,
// $Volume), which every rewrite of those records increments: the $MFT's
// record changes when the MFT grows. It catches re-formatting, resizing and
// MFT growth, not every write (docs/ntfs.md).
Status read_ntfs_identity(DiskReader& disk, uint64_t partition_offset, FsIdentity* out) {
  std::array<std::byte, 512> b;
  if (partition_offset > disk.size() || disk.size() - partition_offset < b.size())
    return Status::error("file system at offset " + std::to_string(partition_offset) +
                         " lies beyond the end of the disk");
  Status s = disk.read(partition_offset, b);
  if (!s) return s;
  if (std::memcmp(&b[3], "NTFS    ", 8) != 0)
    return Status::error("no NTFS boot sector at offset " + std::to_string(partition_offset));
  const uint64_t sector = le16(&b[0x0B]), spc_field = uint8_t(b[0x0D]);
  const uint64_t spc = spc_field <= 0x80 ? spc_field : (spc_field >= 235 ? uint64_t(1) << (256 - spc_field) : 0);
  const uint64_t cluster = sector * spc;
  const int8_t rec_field = int8_t(b[0x40]);
  const uint64_t record = rec_field > 0 ? uint64_t(rec_field) * cluster : rec_field >= -16 ? uint64_t(1) << -rec_field : 0;
  if (cluster == 0 || record < 512 || record > 65536)
    return Status::error("NTFS boot sector at offset " + std::to_string(partition_offset) + " has bad geometry");
  *out = FsIdentity{};
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(le64(&b[0x48])));
  out->uuid = buf;
  out->block_count = le64(&b[0x28]) / spc;
  const uint64_t mft = le64(&b[0x30]);
  if (mft > disk.size() / cluster) return Status::ok();
  for (uint64_t r = 0; r < 4; ++r) {
    const uint64_t at = partition_offset + mft * cluster + r * record;
    std::array<std::byte, 8> h;
    if (at > disk.size() || disk.size() - at < h.size() || !disk.read(at, h)) break;
    const uint64_t usa = le16(&h[4]);
    std::array<std::byte, 2> usn;
    if (usa + 2 > 512 || !disk.read(at + usa, usn)) break;
    out->write_time |= int64_t(le16(&usn[0])) << (16 * r);
  }
  return Status::ok();
}

}  // namespace

Status read_fs_identity(DiskReader& disk, const std::string& type, uint64_t partition_offset,
                        FsIdentity* out) {
  if (type == "vfat") return read_fat_identity(disk, partition_offset, out);
  if (type == "ntfs") return read_ntfs_identity(disk, partition_offset, out);
  if (type != "ext2" && type != "ext3" && type != "ext4")
    return Status::error("no identity check for file system type '" + type + "'");
  std::array<std::byte, 1024> sb;
  if (partition_offset > disk.size() || disk.size() - partition_offset < 2048)
    return Status::error("file system at offset " + std::to_string(partition_offset) +
                         " lies beyond the end of the disk");
  Status s = disk.read(partition_offset + 1024, sb);
  if (!s) return s;
  if (le16(&sb[0x38]) != 0xEF53)
    return Status::error("no ext2/3/4 superblock at offset " + std::to_string(partition_offset));
  const uint32_t incompat = le32(&sb[0x60]);
  uint64_t blocks = le32(&sb[0x04]);
  if (incompat & 0x80) blocks |= uint64_t(le32(&sb[0x150])) << 32;  // INCOMPAT_64BIT
  out->uuid = uuid_text(&sb[0x68]);
  out->block_count = blocks;
  out->inode_count = le32(&sb[0x00]);
  out->write_time = int64_t(le32(&sb[0x30])) | int64_t(uint8_t(sb[0x274])) << 32;
  out->mount_time = int64_t(le32(&sb[0x2C])) | int64_t(uint8_t(sb[0x275])) << 32;
  out->kbytes_written = le64(&sb[0x178]);
  out->free_blocks = le32(&sb[0x0C]);
  if (incompat & 0x80) out->free_blocks |= uint64_t(le32(&sb[0x158])) << 32;
  out->free_inodes = le32(&sb[0x10]);
  const uint32_t ro_compat = le32(&sb[0x64]);
  out->checksum = (ro_compat & 0x400) ? le32(&sb[0x3FC]) : 0;  // RO_COMPAT_METADATA_CSUM
  return Status::ok();
}

}  // namespace dsvmi

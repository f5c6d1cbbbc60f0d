// Boot sector and FSInfo validation. The rules follow what Linux's fat driver
// accepts (fs/fat/inode.c), so that dsvmi crawls every volume the guest can
// mount and refuses the ones it cannot; docs/fat.md lists them.
#include "bpb.h"

#include <cstdio>

#include "le.h"

namespace dsvmi::fat {
namespace {

bool power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string trimmed(const unsigned char* p, size_t n) {
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == 0)) --n;
  return std::string(reinterpret_cast<const char*>(p), n);
}

}  // namespace

std::string serial_text(uint32_t serial) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04X-%04X", unsigned(serial >> 16), unsigned(serial & 0xFFFF));
  return buf;
}

Status decode_bpb(const unsigned char* b, size_t length, uint64_t partition_bytes, Geometry* out,
                  std::vector<std::string>* warnings) {
  if (length < 512) return Status::error("fat: boot sector shorter than 512 bytes");
  Geometry g;
  g.bytes_per_sector = le16(b + 11);
  g.sectors_per_cluster = b[13];
  g.reserved_sectors = le16(b + 14);
  g.num_fats = b[16];
  g.root_entries = le16(b + 17);
  const uint32_t total16 = le16(b + 19);
  const uint8_t media = b[21];
  const uint32_t fat16_sectors = le16(b + 22);
  const uint32_t total32 = le32(b + 32);
  if (g.bytes_per_sector < 512 || g.bytes_per_sector > 4096 || !power_of_two(g.bytes_per_sector))
    return Status::error("fat: bytes per sector " + std::to_string(g.bytes_per_sector) + " is not 512..4096");
  if (!power_of_two(g.sectors_per_cluster))
    return Status::error("fat: sectors per cluster " + std::to_string(g.sectors_per_cluster) + " is not a power of two");
  g.cluster_size = g.bytes_per_sector * g.sectors_per_cluster;
  if (g.reserved_sectors == 0) return Status::error("fat: no reserved sectors");
  if (g.num_fats == 0 || g.num_fats > 4) return Status::error("fat: " + std::to_string(g.num_fats) + " FAT copies");
  if (media != 0xF0 && media < 0xF8) return Status::error("fat: invalid media byte " + std::to_string(media));
  g.total_sectors = total16 ? total16 : total32;
  if (g.total_sectors == 0) return Status::error("fat: total sector count is 0");

  const bool fat32 = fat16_sectors == 0;
  if (fat32) {
    g.fat_bits = 32;
    g.fat_sectors = le32(b + 36);
    const uint16_t ext_flags = le16(b + 40);
    const uint16_t version = le16(b + 42);
    g.root_cluster = le32(b + 44);
    g.fsinfo_sector = le16(b + 48);
    g.backup_boot_sector = le16(b + 50);
    if (g.fat_sectors == 0) return Status::error("fat: FAT size is 0");
    if (version != 0) return Status::error("fat: FAT32 version " + std::to_string(version) + " is not 0.0");
    g.mirrored = (ext_flags & 0x80) == 0;
    g.active_fat = g.mirrored ? 0 : (ext_flags & 0x0F);
    if (g.active_fat >= g.num_fats) return Status::error("fat: active FAT " + std::to_string(g.active_fat) + " does not exist");
    if (g.fsinfo_sector == 0xFFFF || g.fsinfo_sector >= g.reserved_sectors) g.fsinfo_sector = 0;
    if (g.backup_boot_sector == 0xFFFF || g.backup_boot_sector >= g.reserved_sectors) g.backup_boot_sector = 0;
    if (b[66] == 0x29) {
      g.serial = le32(b + 67);
      g.label = trimmed(b + 71, 11);
    }
  } else {
    g.fat_sectors = fat16_sectors;
    if (g.root_entries == 0) return Status::error("fat: FAT12/16 with no root directory entries");
    if (g.root_entries % (g.bytes_per_sector / 32) != 0)
      return Status::error("fat: " + std::to_string(g.root_entries) + " root entries do not fill whole sectors");
    if (b[38] == 0x29) {
      g.serial = le32(b + 39);
      g.label = trimmed(b + 43, 11);
    }
  }
  const uint64_t fat_end = uint64_t(g.reserved_sectors) + uint64_t(g.num_fats) * g.fat_sectors;
  g.root_dir_sector = fat_end;
  g.root_dir_sectors = fat32 ? 0 : uint32_t(uint64_t(g.root_entries) * 32 / g.bytes_per_sector);
  g.first_data_sector = fat_end + g.root_dir_sectors;
  if (g.first_data_sector >= g.total_sectors)
    return Status::error("fat: the data region starts at sector " + std::to_string(g.first_data_sector) +
                         ", past the " + std::to_string(g.total_sectors) + " sectors of the volume");
  // What the partition really holds bounds every array sized from the BPB.
  const uint64_t partition_sectors = partition_bytes / g.bytes_per_sector;
  uint64_t usable = g.total_sectors;
  if (usable > partition_sectors) {
    warnings->push_back("fat: the boot sector claims " + std::to_string(g.total_sectors) +
                        " sectors but the partition holds " + std::to_string(partition_sectors) +
                        " (truncated?)");
    usable = partition_sectors;
    if (g.first_data_sector >= usable)
      return Status::error("fat: the data region starts past the end of the partition");
  }
  uint64_t clusters = (usable - g.first_data_sector) / g.sectors_per_cluster;
  if (!fat32) g.fat_bits = clusters > 0xFF4 ? 16 : 12;
  const uint64_t max_clusters = g.fat_bits == 32 ? 0x0FFFFFF6 - 1 : g.fat_bits == 16 ? 0xFFF6 - 1 : 0xFF4 - 1;
  if (clusters > max_clusters)
    return Status::error("fat: " + std::to_string(clusters) + " clusters are too many for FAT" + std::to_string(g.fat_bits));
  // Entries the FAT can hold (two are reserved); Linux limits the count the same way.
  const uint64_t fat_entries = uint64_t(g.fat_sectors) * g.bytes_per_sector * 8 / g.fat_bits;
  if (fat_entries < 3) return Status::error("fat: the FAT is too small to hold any cluster");
  if (clusters > fat_entries - 2) {
    warnings->push_back("fat: the FAT holds entries for " + std::to_string(fat_entries - 2) + " of " +
                        std::to_string(clusters) + " clusters; the rest are unusable");
    clusters = fat_entries - 2;
  }
  if (clusters == 0) return Status::error("fat: no data clusters");
  g.cluster_count = uint32_t(clusters);
  if (fat32 && !g.valid_cluster(g.root_cluster))
    return Status::error("fat: root directory cluster " + std::to_string(g.root_cluster) + " is not a data cluster");
  *out = std::move(g);
  return Status::ok();
}

void decode_fsinfo(const unsigned char* s, size_t length, Geometry* g, std::vector<std::string>* warnings) {
  if (length < 512) return;
  if (le32(s) != 0x41615252 || le32(s + 484) != 0x61417272 || le32(s + 508) != 0xAA550000) {
    warnings->push_back("fat: FSInfo sector " + std::to_string(g->fsinfo_sector) + " has bad signatures");
    return;
  }
  g->fsinfo_free = le32(s + 488);
  g->fsinfo_next = le32(s + 492);
  if (g->fsinfo_free != 0xFFFFFFFF && g->fsinfo_free > g->cluster_count) {
    warnings->push_back("fat: FSInfo claims " + std::to_string(g->fsinfo_free) + " free clusters of " +
                        std::to_string(g->cluster_count));
    g->fsinfo_free = 0xFFFFFFFF;
  }
}

}  // namespace dsvmi::fat

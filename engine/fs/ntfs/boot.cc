// Boot sector decoding (docs/ntfs.md, "$Boot").
#include "boot.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "le.h"

namespace dsvmi::ntfs {
namespace {

bool power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

uint64_t decode_size_field(int8_t v, uint32_t cluster_size) {
  if (v > 0) return uint64_t(v) * cluster_size;
  if (v < 0 && v >= -31) return uint64_t(1) << -v;
  return 0;
}

Status decode_boot(const unsigned char* b, size_t n, uint64_t partition_bytes, Geometry* g) {
  if (n < 512) return Status::error("ntfs: boot sector shorter than 512 bytes");
  if (std::memcmp(b + 3, "NTFS    ", 8) != 0) return Status::error("ntfs: boot sector has no 'NTFS    ' OEM id");
  if (b[510] != 0x55 || b[511] != 0xAA) return Status::error("ntfs: boot sector has no 0x55AA signature");
  Geometry out;
  out.bytes_per_sector = le16(b + 0x0B);
  if (!power_of_two(out.bytes_per_sector) || out.bytes_per_sector < 256 || out.bytes_per_sector > 4096)
    return Status::error("ntfs: bytes per sector " + std::to_string(out.bytes_per_sector) + " is not 256..4096");
  // Cluster sizes above 64 KiB store a negative exponent of sectors.
  const uint8_t spc = b[0x0D];
  if (spc == 0) return Status::error("ntfs: sectors per cluster is 0");
  if (spc <= 0x80) {
    out.sectors_per_cluster = spc;
  } else {
    const unsigned shift = 256u - spc;
    if (shift > 21) return Status::error("ntfs: sectors per cluster 2^" + std::to_string(shift) + " is absurd");
    out.sectors_per_cluster = 1u << shift;
  }
  if (!power_of_two(out.sectors_per_cluster))
    return Status::error("ntfs: sectors per cluster " + std::to_string(spc) + " is not a power of two");
  const uint64_t cluster = uint64_t(out.sectors_per_cluster) * out.bytes_per_sector;
  if (cluster > kMaxClusterSize)
    return Status::error("ntfs: cluster size " + std::to_string(cluster) + " exceeds 2 MiB");
  out.cluster_size = uint32_t(cluster);
  out.total_sectors = le64(b + 0x28);
  if (out.total_sectors == 0) return Status::error("ntfs: the volume has 0 sectors");
  const uint64_t volume_clusters = out.total_sectors / out.sectors_per_cluster;
  out.total_clusters = std::min<uint64_t>(volume_clusters, partition_bytes / out.cluster_size);
  if (volume_clusters > partition_bytes / out.cluster_size)
    return Status::error("ntfs: the volume claims " + std::to_string(out.total_sectors) +
                         " sectors, more than its partition of " + std::to_string(partition_bytes) + " bytes holds");
  out.mft_lcn = le64(b + 0x30);
  out.mftmirr_lcn = le64(b + 0x38);
  if (out.mft_lcn >= out.total_clusters || out.mftmirr_lcn >= out.total_clusters)
    return Status::error("ntfs: $MFT (cluster " + std::to_string(out.mft_lcn) + ") or $MFTMirr (cluster " +
                         std::to_string(out.mftmirr_lcn) + ") lies past the volume's " +
                         std::to_string(out.total_clusters) + " clusters");
  const uint64_t rec = decode_size_field(int8_t(b[0x40]), out.cluster_size);
  if (!power_of_two(rec) || rec < 512 || rec > kMaxRecordSize)
    return Status::error("ntfs: File Record size " + std::to_string(rec) + " (field " +
                         std::to_string(int(int8_t(b[0x40]))) + ") is not a power of two in 512..65536");
  out.record_size = uint32_t(rec);
  const uint64_t idx = decode_size_field(int8_t(b[0x44]), out.cluster_size);
  if (!power_of_two(idx) || idx < 512 || idx > kMaxRecordSize)
    return Status::error("ntfs: index block size " + std::to_string(idx) + " (field " +
                         std::to_string(int(int8_t(b[0x44]))) + ") is not a power of two in 512..65536");
  out.index_block_size = uint32_t(idx);
  out.serial = le64(b + 0x48);
  *g = out;
  return Status::ok();
}

}  // namespace dsvmi::ntfs

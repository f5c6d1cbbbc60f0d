// The NTFS boot sector ($Boot's first sector): sector and cluster sizes, the
// locations of $MFT and $MFTMirr, and the File Record and index block sizes,
// whose one-byte fields encode either a cluster count or, when negative,
// 2^-n bytes. See docs/ntfs.md.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dsvmi/status.h"

namespace dsvmi::ntfs {

struct Geometry {
  uint32_t bytes_per_sector = 0;
  uint32_t sectors_per_cluster = 0;
  uint32_t cluster_size = 0;
  uint64_t total_sectors = 0;   // of the volume (the backup boot sector lies past them)
  uint64_t total_clusters = 0;  // clusters inside both the volume and the partition
  uint64_t mft_lcn = 0;
  uint64_t mftmirr_lcn = 0;
  uint32_t record_size = 0;       // bytes of one File Record
  uint32_t index_block_size = 0;  // bytes of one $I30 index block (INDX)
  uint64_t serial = 0;
};

// Largest cluster Windows formats (2 MiB since Windows 10 1709).
inline constexpr uint32_t kMaxClusterSize = 2u << 20;
inline constexpr uint32_t kMaxRecordSize = 64u << 10;

// Decodes and validates boot sector `b` (at least 512 bytes) of a volume in a
// partition of `partition_bytes`. Any inconsistency is an error: nothing of
// the volume can be found without these fields.
Status decode_boot(const unsigned char* b, size_t n, uint64_t partition_bytes, Geometry* g);

// A size field of the boot sector (clusters per File Record or per index
// block): positive = clusters, negative (as int8) = 2^-v bytes. 0 on nonsense.
uint64_t decode_size_field(int8_t v, uint32_t cluster_size);

}  // namespace dsvmi::ntfs

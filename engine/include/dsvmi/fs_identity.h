// FsIdentity: the few superblock fields that tell whether a file system is
// still the one an index was crawled from.
#pragma once

#include <cstdint>
#include <string>

#include "dsvmi/disk_reader.h"
#include "dsvmi/status.h"

namespace dsvmi {

struct FsIdentity {
  std::string uuid;  // canonical lower-case text
  uint64_t block_count = 0;
  uint64_t inode_count = 0;
  int64_t write_time = 0;      // ext: s_wtime
  int64_t mount_time = 0;      // ext: s_mtime
  uint64_t kbytes_written = 0; // ext: s_kbytes_written
  uint64_t free_blocks = 0;    // ext: s_free_blocks_count
  uint64_t free_inodes = 0;    // ext: s_free_inodes_count
  uint32_t checksum = 0;       // ext: s_checksum with metadata_csum
};

// Reads the identity of the file system of `type` starting at
// `partition_offset`: "ext2/3/4", "vfat" or "ntfs" (whose fields are
// documented in docs/fat.md and docs/ntfs.md). Unknown types: error (no identity to compare).
Status read_fs_identity(DiskReader& disk, const std::string& type, uint64_t partition_offset,
                        FsIdentity* out);

}  // namespace dsvmi

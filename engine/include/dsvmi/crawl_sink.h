// CrawlSink: where a file system crawler reports what it finds. The index
// builder implements it; tests implement it to compare against debugfs.
//
// Order: begin_filesystem, then any interleaving of the other calls (a
// crawler streams; it does not hold the whole tree), then end_filesystem.
// Block numbers are file-system blocks of the current file system; the sink
// maps them to disk bytes with FilesystemInfo (partition offset, block size).
#pragma once

#include <cstdint>
#include <string>

#include "dsvmi/fs_model.h"

namespace dsvmi {

struct FilesystemInfo {
  std::string type;          // "ext4", "ext3", "ext2", later "vfat", "ntfs"
  std::string uuid;          // canonical text form
  std::string label;
  uint64_t partition_offset = 0;  // bytes from disk start
  uint64_t partition_size = 0;    // bytes
  uint32_t block_size = 0;        // bytes (ext4 block, FAT/NTFS cluster)
  uint64_t block_count = 0;
  uint64_t inode_count = 0;
  uint64_t root_ino = 0;
  uint32_t inode_size = 0;        // on-disk inode record size (ext4)
  uint64_t journal_ino = 0;       // 0 when the file system has no journal inode
};

class CrawlSink {
 public:
  virtual ~CrawlSink() = default;
  virtual void begin_filesystem(const FilesystemInfo& fs) = 0;
  // Every in-use inode, once, with its extents (data blocks).
  virtual void inode(const Inode& inode) = 0;
  // Every entry of a directory (not "." and ".."), once per link.
  virtual void dir_entry(uint64_t dir_ino, const DirEntry& entry) = 0;
  // A run of blocks of one kind that is NOT in any Inode::extents: file-system-
  // wide metadata (superblocks, descriptors, bitmaps, inode tables; owner 0)
  // and per-inode mapping blocks (extent tree nodes, indirect blocks, external
  // xattr blocks; owner = that inode, logical = 0). Blocks an inode's extents
  // cover (file data, directory blocks, slow symlink targets, the journal) are
  // reported only through inode(); their kind follows from the inode's type
  // and FilesystemInfo::journal_ino.
  virtual void blocks(BlockKind kind, uint64_t first, uint64_t count, uint64_t owner_ino,
                      uint64_t logical) = 0;
  virtual void problem(const CrawlProblem& problem) = 0;
  virtual void end_filesystem() = 0;
};

}  // namespace dsvmi

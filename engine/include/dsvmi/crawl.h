// crawl_disk: a whole virtual disk into an index file. Reads the partition
// table, crawls every partition holding a file system dsvmi understands
// (ext2/3/4, FAT12/16/32, NTFS) into one IndexBuilder, records the rest as skipped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dsvmi/disk_reader.h"
#include "dsvmi/partition.h"
#include "dsvmi/status.h"

namespace dsvmi {

struct CrawlOptions {
  std::string index_path;  // where to write the index ("" = build, don't write)
  // Called now and then with the fraction of the current file system's inode
  // numbers crawled so far (0..1) and its number among those crawled.
  std::function<void(size_t fs_number, double fraction)> progress;
};

struct CrawledFilesystem {
  uint32_t partition = 0;  // Partition::number
  std::string type, uuid, label;
  uint64_t offset = 0, size = 0;
  uint32_t block_size = 0;
  uint64_t inodes = 0, files = 0, directories = 0, metadata_blocks = 0, problems = 0;
  uint64_t bytes_read = 0;
  Status status;  // crawl error (the file system is then not in the index)
};

struct CrawlSummary {
  std::string disk;
  uint64_t disk_size = 0;
  PartitionTable table;
  std::vector<CrawledFilesystem> filesystems;
  std::vector<std::string> skipped;  // "partition 2: swap"
  uint64_t index_bytes = 0;
  uint64_t inodes = 0;  // all crawled file systems
  double seconds = 0;   // wall time of the whole crawl, index write included
};

Status crawl_disk(DiskReader& disk, const CrawlOptions& options, CrawlSummary* summary);

}  // namespace dsvmi

// The ext2/ext3/ext4 crawler: reads one file system through a DiskReader and
// streams what it finds into a CrawlSink (fs_model.h, crawl_sink.h).
//
// It reads the superblock, the group descriptors, each group's inode bitmap
// and the used part of its inode table in large batched reads, maps every
// in-use inode's blocks (extent trees of any depth, ext2/3 indirect maps,
// inline data) and parses every directory block (linear and htree alike).
// The disk is untrusted: bad geometry is a Status error before anything is
// reported; damage found later becomes CrawlProblem records and the crawl
// goes on where it safely can. Work and memory are bounded by the file
// system's real size. See docs/ext4.md.
#pragma once

#include <cstdint>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/status.h"

namespace dsvmi {

struct Ext4CrawlOptions {
  // Bytes of inode tables (or directory blocks) requested per read_batch and
  // held in memory at once.
  uint64_t batch_bytes = 8u << 20;
  // After this many problems the crawl stops reporting them (one final
  // problem says so) and keeps going.
  uint64_t max_problems = 10000;
};

struct Ext4CrawlStats {
  uint64_t inodes = 0;            // inode() calls
  uint64_t directories = 0;
  uint64_t dir_entries = 0;       // dir_entry() calls
  uint64_t metadata_blocks = 0;   // blocks reported through blocks()
  uint64_t problems = 0;          // problems found (reported or not)
  uint64_t bytes_read = 0;        // bytes read from the disk
};

// Crawls the ext2/3/4 file system at [offset, offset + size) of the disk.
Status crawl_ext4(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink,
                  const Ext4CrawlOptions& options = {}, Ext4CrawlStats* stats = nullptr);

}  // namespace dsvmi

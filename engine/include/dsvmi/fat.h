// The FAT12/16/32 crawler: reads one FAT file system through a DiskReader and
// streams what it finds into a CrawlSink (fs_model.h, crawl_sink.h).
//
// It validates the boot sector (BPB) and, on FAT32, the FSInfo sector, loads
// the active FAT (and compares the other copies with it), walks every
// directory from the root following cluster chains, and reports each file and
// directory with a stable identity number, its attributes mapped to the
// neutral model and its clusters as extents. Blocks are SECTORS (see
// docs/fat.md: clusters need not be aligned to the partition start).
//
// The disk is untrusted: bad geometry is a Status error before anything is
// reported; damage found later (loops, cross-linked chains, orphaned long
// name slots, differing FAT copies) becomes CrawlProblem records and the
// crawl goes on where it safely can. Work and memory are bounded by the file
// system's real size (the part of it inside the partition).
#pragma once

#include <cstdint>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/status.h"

namespace dsvmi {

struct FatCrawlOptions {
  // Bytes of FAT or directory clusters requested per read_batch.
  uint64_t batch_bytes = 8u << 20;
  // After this many problems the crawl stops reporting them (one final
  // problem says so) and keeps going.
  uint64_t max_problems = 10000;
};

struct FatCrawlStats {
  unsigned fat_bits = 0;        // 12, 16 or 32
  uint64_t clusters = 0;        // data clusters in the file system
  uint64_t free_clusters = 0;   // per the active FAT
  uint64_t files = 0;
  uint64_t directories = 0;     // the root included
  uint64_t dir_entries = 0;     // dir_entry() calls
  uint64_t deleted_entries = 0; // 0xE5 short entries seen
  uint64_t orphan_lfn_slots = 0;
  uint64_t problems = 0;        // found (reported or not)
  uint64_t bytes_read = 0;
};

// Crawls the FAT file system at [offset, offset + size) of the disk.
Status crawl_fat(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink,
                 const FatCrawlOptions& options = {}, FatCrawlStats* stats = nullptr);

}  // namespace dsvmi

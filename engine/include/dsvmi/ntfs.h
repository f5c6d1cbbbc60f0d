// The NTFS crawler: reads one NTFS volume through a DiskReader and streams
// what it finds into a CrawlSink (fs_model.h, crawl_sink.h).
//
// It validates the boot sector, reads the $MFT's own File Record to learn
// where the (possibly fragmented) MFT lies, then reads every File Record in
// batches, verifying each one's update sequence fixups (torn records are
// rejected and counted), merges the attributes of files whose records spill
// into extension records ($ATTRIBUTE_LIST), and reports each file under its
// MFT record number with every real name it has ($FILE_NAME parent
// references; the 8.3 DOS alias is never a name of its own). It then reads
// every directory's $I30 index and reports each difference between the two
// views as a problem. Blocks are CLUSTERS. See docs/ntfs.md.
//
// The disk is untrusted: bad geometry or an unreadable $MFT record is a
// Status error before anything is reported; damage found later (torn
// records, runlists outside the volume or mapping a cluster twice, attribute
// lists naming records that are not theirs, index/record mismatches) becomes
// CrawlProblem records and the crawl goes on. Work and memory are bounded by
// the MFT's size, itself bounded by the volume.
#pragma once

#include <cstdint>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/status.h"

namespace dsvmi {

struct NtfsCrawlOptions {
  // Bytes of File Records or index blocks requested per read_batch.
  uint64_t batch_bytes = 8u << 20;
  // After this many problems the crawl stops reporting them (one final
  // problem says so) and keeps going.
  uint64_t max_problems = 10000;
};

struct NtfsCrawlStats {
  uint32_t cluster_size = 0;
  uint32_t record_size = 0;
  uint64_t mft_records = 0;        // File Records the $MFT's data holds
  uint64_t mft_runs = 0;           // fragments of the $MFT
  uint64_t in_use_records = 0;
  uint64_t extension_records = 0;  // in use, belonging to a base record
  uint64_t torn_records = 0;       // update sequence mismatch: rejected
  uint64_t bad_records = 0;        // other damage (magic, header, attributes)
  uint64_t files = 0;              // regular files and special files
  uint64_t directories = 0;        // the root included
  uint64_t symlinks = 0;
  uint64_t names = 0;              // real names (dir_entry() calls)
  uint64_t dos_names = 0;          // 8.3 aliases seen (not names)
  uint64_t named_streams = 0;      // alternate data streams
  uint64_t attribute_lists = 0;    // files with an $ATTRIBUTE_LIST
  uint64_t index_blocks = 0;       // INDX blocks read
  uint64_t torn_index_blocks = 0;
  uint64_t index_mismatches = 0;   // names in one of index / $FILE_NAME only
  uint64_t problems = 0;           // found (reported or not)
  uint64_t bytes_read = 0;
};

// Crawls the NTFS volume at [offset, offset + size) of the disk.
Status crawl_ntfs(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink,
                  const NtfsCrawlOptions& options = {}, NtfsCrawlStats* stats = nullptr);

}  // namespace dsvmi

// The FAT crawler's orchestration: geometry, the FAT, then every directory
// breadth-first in batched reads. bpb.cc, fat_table.cc, directory.cc and
// names.cc hold the format; this file holds the walk.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "bpb.h"
#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/fat.h"
#include "directory.h"
#include "fat_table.h"

namespace dsvmi::fat {

// Linux caps a directory at 65536 entries (FAT_MAX_DIR_SIZE); so does dsvmi.
inline constexpr uint64_t kMaxDirectoryBytes = 2u << 20;

class Crawler {
 public:
  Crawler(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink, const FatCrawlOptions& options,
          FatCrawlStats& stats)
      : disk_(disk), offset_(offset), size_(size), sink_(sink), options_(options), stats_(stats) {}
  Status run();

 private:
  struct PendingDir {
    uint64_t ino;
    Chain chain;          // empty for the FAT12/16 root region
    Inode inode;          // reported once its entries are known
  };

  Status read_geometry();
  Status load_fat();
  Status read_directory(const PendingDir& dir, std::vector<unsigned char>* out);
  void crawl_directories();
  void process_directory(PendingDir& dir, const std::vector<unsigned char>& bytes);
  void add_entry(PendingDir& parent, const ParsedEntry& e, uint64_t entry_byte, uint32_t* subdirs);
  uint64_t entry_disk_byte(const PendingDir& dir, size_t offset) const;
  void extents_of(const Chain& chain, std::vector<Extent>* out) const;
  void problem(uint64_t ino, uint64_t sector, std::string what);
  Status read_sectors(uint64_t sector, uint64_t count, unsigned char* out);

  DiskReader& disk_;
  uint64_t offset_, size_;
  CrawlSink& sink_;
  const FatCrawlOptions& options_;
  FatCrawlStats& stats_;

  Geometry g_;
  std::vector<std::string> warnings_;
  FatTable fat_;
  std::unique_ptr<ChainWalker> walker_;
  std::deque<PendingDir> queue_;
  uint64_t next_overflow_id_ = 0xFFFFFFFF;
  std::string root_label_;
  bool label_found_ = false;
};

}  // namespace dsvmi::fat

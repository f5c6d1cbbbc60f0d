// The crawler's state, shared by its parts: crawler.cc (groups, inode tables,
// orchestration), block_map.cc (extent trees, indirect maps) and directory.cc
// (directory blocks, inline directories).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/ext4.h"
#include "superblock.h"

namespace dsvmi::ext4 {

struct GroupDesc {
  uint64_t block_bitmap = 0, inode_bitmap = 0, inode_table = 0;
  uint16_t flags = 0;
  uint32_t itable_unused = 0;
  bool valid = false;  // locations inside the file system
};

// Merges adjacent runs of the same kind and owner before they reach the sink.
class RunEmitter {
 public:
  explicit RunEmitter(CrawlSink& sink, Ext4CrawlStats& stats) : sink_(sink), stats_(stats) {}
  void add(BlockKind kind, uint64_t first, uint64_t count, uint64_t owner);
  void flush();

 private:
  CrawlSink& sink_;
  Ext4CrawlStats& stats_;
  bool open_ = false;
  BlockKind kind_ = BlockKind::Free;
  uint64_t first_ = 0, count_ = 0, owner_ = 0;
};

// One directory block waiting for a batched read.
struct PendingDirBlock {
  uint64_t dir_ino;
  uint64_t physical;
  uint32_t inode_csum_seed;
};

class Crawler {
 public:
  Crawler(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink, const Ext4CrawlOptions& options,
          Ext4CrawlStats& stats)
      : disk_(disk), offset_(offset), size_(size), sink_(sink), options_(options), stats_(stats),
        runs_(sink, stats) {}
  Status run();

  // For callers that decode single inodes (the inference engine, issue 6):
  // reads and checks the superblock and group descriptors (begin_filesystem
  // is called on the sink), without crawling anything.
  Status open();
  // Decodes one raw inode record and reports it like a crawl would: inode(),
  // MapNode/Xattr runs (after runs_.flush()), and for directories their
  // entries (after flush_directories()). Skips free/deleted records.
  void process_inode(uint64_t ino, const unsigned char* raw);
  // Resets the per-crawl work budgets and seen-sets so that a long-lived
  // Crawler can decode the same inodes again and again.
  void reset_budgets();

  // Shared helpers.
  void problem(uint64_t ino, uint64_t block, std::string what);
  Status read_blocks(uint64_t block, uint64_t count, unsigned char* out);
  bool block_in_fs(uint64_t block, uint64_t count = 1) const {
    return block >= sb_.first_data_block && block < sb_.blocks_count && count <= sb_.blocks_count - block;
  }

  // block_map.cc: fills extents; reports mapping blocks (MapNode) to runs_.
  void map_extent_tree(uint64_t ino, const unsigned char* i_block, uint32_t csum_seed, std::vector<Extent>* out);
  void map_indirect(uint64_t ino, const unsigned char* i_block, std::vector<Extent>* out);

  // directory.cc
  void parse_dir_entries(uint64_t dir_ino, const unsigned char* p, size_t length, uint64_t block,
                         bool has_csum_tail);
  void queue_directory(uint64_t ino, uint64_t size, const std::vector<Extent>& extents, uint32_t csum_seed);
  void flush_directories();

 private:
  Status read_superblock();
  Status read_group_descriptors();
  void report_group_metadata();
  void crawl_inodes();
  void read_inline_data(const unsigned char* raw, uint64_t ino, std::string* out, bool* found_xattr);

  DiskReader& disk_;
  uint64_t offset_, size_;
  CrawlSink& sink_;
  const Ext4CrawlOptions& options_;
  Ext4CrawlStats& stats_;

 public:
  Superblock sb_;
  RunEmitter runs_;
  std::vector<GroupDesc> groups_;
  uint64_t map_nodes_read_ = 0;    // all inodes together: bounded by blocks_count
  uint64_t dir_blocks_queued_ = 0; // likewise
  bool map_budget_exhausted_ = false;
  bool dir_budget_exhausted_ = false;
  std::vector<PendingDirBlock> pending_dirs_;
  std::vector<unsigned char> dir_buffer_;
  std::vector<ReadRequest> requests_;
  std::vector<unsigned char> level_buffers_[6];  // one block per tree level (extent/indirect nodes)
  std::unordered_set<uint64_t> visited_nodes_;   // per inode: no node is read twice
  bool map_node(uint64_t ino, uint64_t block, unsigned level);  // checks + reads into level_buffers_[level]
  void add_data(uint64_t ino, uint64_t logical, uint64_t physical, uint32_t length, bool unwritten,
                std::vector<Extent>* out);
  void walk_extent_node(uint64_t ino, const unsigned char* node, size_t length, int expected_depth,
                        uint32_t csum_seed, uint64_t* next_logical, std::vector<Extent>* out);
  void walk_indirect(uint64_t ino, uint64_t block, unsigned level, uint64_t base, std::vector<Extent>* out);
  std::unordered_set<uint64_t> xattr_blocks_seen_;
  Inode inode_;  // reused for every inode: keeps its vectors' capacity
};

}  // namespace dsvmi::ext4

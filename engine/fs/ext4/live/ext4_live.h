// Ext4Live: the live driver (infer/fs_driver.h) for one ext2/3/4 file
// system of the disk: jbd2 transactions and guest Flushes are its
// consistency points; inode tables, directory blocks and extent/map nodes
// are decoded with the crawler's own decoder (../crawler.h). The public face
// is InferenceEngine (dsvmi/inference.h), which routes frames here.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "../../../infer/model_driver.h"
#include "../crawler.h"
#include "dsvmi/events.h"
#include "dsvmi/frame_view.h"
#include "dsvmi/glob.h"
#include "dsvmi/inference.h"
#include "dsvmi/reverse_map.h"
#include "journal.h"

namespace dsvmi::infer {

// What the decoder reports for a batch of inodes.
class DecodeSink : public CrawlSink {
 public:
  void begin_filesystem(const FilesystemInfo&) override {}
  void inode(const Inode& n) override { inodes[n.ino] = n; }
  void dir_entry(uint64_t dir, const DirEntry& e) override { entries[dir].push_back(e); }
  void blocks(BlockKind kind, uint64_t first, uint64_t count, uint64_t owner, uint64_t) override {
    if (owner != 0) meta[owner].push_back({kind, first, count});
  }
  void problem(const CrawlProblem& p) override {
    problems++;
    last_problem = "inode " + std::to_string(p.ino) + ": " + p.what;
  }
  void end_filesystem() override {}
  void clear() {
    inodes.clear();
    entries.clear();
    meta.clear();
  }
  struct Run {
    BlockKind kind;
    uint64_t first, count;
  };
  std::unordered_map<uint64_t, Inode> inodes;
  std::unordered_map<uint64_t, std::vector<DirEntry>> entries;
  std::unordered_map<uint64_t, std::vector<Run>> meta;
  uint64_t problems = 0;
  std::string last_problem;
};

class Ext4Live : public ModelDriver {
 public:
  Ext4Live(EngineContext& ctx, const FsIndex& index, DiskReader& disk, uint32_t partition);
  Status init() override;

  void write(const FrameView& f, uint64_t disk_offset, uint64_t len, const uint8_t* data, bool discard) override;
  void flush(const FrameView& f) override;
  void lost(const FrameView& f, uint64_t disk_offset, uint64_t len) override;
  void finish() override;

  // Sets in `gate` the grains this file system needs under the current
  // policy, from the current model (index + overlay): every metadata and
  // journal block, the data blocks of watched files. Does not publish.
  Status add_gate_grains(Gate& gate, PolicyApplyResult* result) override;

 private:
  Status read_back_block(uint64_t b, uint8_t* out) override;
  // Inline data lives in the inode, not in extents.
  Status readable(const Inode& n) override;
  BlockKind data_kind(const Inode& n) const;
  void journal_block(const FrameView& f, uint64_t position, const uint8_t* block);
  void apply_transaction(uint32_t seq);
  void consistency_point(const FrameView& f);
  void decode(const std::set<uint64_t>& inos);
  Status read_inode_raw(uint64_t ino, std::vector<uint8_t>* raw);
  void inodes_of_table_block(uint64_t block, std::set<uint64_t>* out);
  void settle_pending(const FrameView& f);

  const FsIndex& index_;
  DecodeSink decoded_;
  Ext4CrawlOptions crawl_options_;
  Ext4CrawlStats crawl_stats_;
  std::unique_ptr<ext4::Crawler> decoder_;
  JournalTracker journal_;
  std::vector<Extent> journal_extents_;
  std::vector<std::pair<uint64_t, uint64_t>> itables_;  // (first block, group), sorted
  std::set<uint64_t> dirty_;
  std::unordered_map<uint64_t, std::vector<DecodeSink::Run>> map_nodes_;  // last known, per inode
};

}  // namespace dsvmi::infer

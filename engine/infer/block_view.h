// BlockView: the engine's view of the disk at the last point it has
// interpreted — shadow blocks (metadata images from writes and committed
// journal transactions) over pending data over the disk itself. It is a
// DiskReader so that the ext4 crawler's decoder reads through it unchanged.
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>
#include <vector>

#include "dsvmi/disk_reader.h"

namespace dsvmi::infer {

// Data written to a block nobody owns yet (seed's "unknown writes").
struct PendingPiece {
  uint32_t offset = 0;  // within the block
  std::vector<uint8_t> bytes;
  uint64_t time_ns = 0;
  uint64_t frame_seq = 0;
};

class BlockView : public DiskReader {
 public:
  BlockView(DiskReader& disk, uint64_t partition_offset, uint64_t partition_size, uint32_t block_size)
      : disk_(disk), base_(partition_offset), size_(partition_size), bs_(block_size) {}

  uint64_t size() const override { return disk_.size(); }
  Status read(uint64_t offset, std::span<std::byte> out) override;
  std::string describe() const override { return "view of " + disk_.describe(); }

  uint32_t block_size() const { return bs_; }
  uint64_t blocks() const { return size_ / bs_; }
  // The current image of fs block b into out (block_size bytes). Blocks
  // read from the disk are kept in a small clean cache (the same directory
  // and inode-table blocks are decoded batch after batch); fresh = true
  // bypasses it (data read back from a live disk).
  Status get_block(uint64_t b, uint8_t* out, bool fresh = false);
  // File data: out.size() bytes from byte `in` of fs block b on, in one
  // disk read past the clean cache (hashing a large file must not evict the
  // metadata the decoder rereads), shadow images on top. Pending data is
  // not included: it belongs to no file yet.
  Status read_data(uint64_t b, uint64_t in, std::span<uint8_t> out);
  // Forgets a block's cached disk image (its role changed).
  void forget(uint64_t b) {
    shadow_.erase(b);
    clean_.erase(b);
  }

  // Shadow: metadata block images.
  std::vector<uint8_t>* shadow(uint64_t b);
  // Writes [offset, offset + len) of block b into the shadow (loading the
  // rest of the block from the view first if it has no shadow yet).
  Status shadow_write(uint64_t b, uint32_t offset, const uint8_t* data, uint32_t len);
  void shadow_set(uint64_t b, const uint8_t* block);
  void drop_shadow(uint64_t b) { forget(b); }
  // Forgets shadow, cached and pending data of blocks [first, last): the
  // disk is the truth there again (frames were lost). Costs the size of
  // what is held, not of the range.
  void drop_range(uint64_t first, uint64_t last);
  size_t shadow_blocks() const { return shadow_.size(); }

  // Pending store.
  std::map<uint64_t, std::vector<PendingPiece>>& pending() { return pending_; }
  void add_pending(uint64_t b, PendingPiece piece);
  void drop_pending(uint64_t b);
  // Drops the block whose pending data is oldest; returns the pieces dropped.
  size_t evict_oldest_pending();
  // Bounds the order queue after pending entries were erased in bulk.
  void tidy_pending_order() {
    if (pending_order_.size() <= 2 * pending_.size() + 1024) return;
    std::deque<uint64_t> fresh;
    for (uint64_t b : pending_order_) {
      if (pending_.count(b)) fresh.push_back(b);
    }
    pending_order_.swap(fresh);
  }
  uint64_t pending_bytes() const { return pending_bytes_; }
  void account_pending_removed(uint64_t bytes) { pending_bytes_ -= bytes; }

  uint64_t disk_block_reads = 0;

 private:
  DiskReader& disk_;
  uint64_t base_, size_;
  uint32_t bs_;
  std::unordered_map<uint64_t, std::vector<uint8_t>> shadow_;
  std::map<uint64_t, std::vector<PendingPiece>> pending_;
  static constexpr size_t kCleanCacheBlocks = 2048;
  std::unordered_map<uint64_t, std::vector<uint8_t>> clean_;
  std::vector<uint64_t> clean_order_;  // FIFO ring of cached block numbers
  size_t clean_next_ = 0;
  uint64_t pending_bytes_ = 0;
  std::deque<uint64_t> pending_order_;  // blocks in first-write order (may hold stale entries)
};

}  // namespace dsvmi::infer

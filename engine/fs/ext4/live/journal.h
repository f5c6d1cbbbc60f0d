// jbd2 (the ext3/ext4 journal) as it appears in the write stream: the
// journal superblock, descriptor blocks with their tag lists, commit and
// revoke blocks. Pure parsing over untrusted bytes, no I/O: the engine feeds
// it journal blocks as the guest writes them and asks it which committed
// transactions' block images to apply. Formats follow the kernel's
// include/linux/jbd2.h (tag3 for csum v3; 8/12-byte tags, +2 with csum v2).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace dsvmi::infer {

inline constexpr uint32_t kJbd2Magic = 0xC03B3998u;
enum Jbd2BlockType : uint32_t {
  kJbd2Descriptor = 1,
  kJbd2Commit = 2,
  kJbd2SuperblockV1 = 3,
  kJbd2SuperblockV2 = 4,
  kJbd2Revoke = 5,
};

struct JournalGeometry {
  uint32_t block_size = 0;
  uint32_t maxlen = 0;  // journal blocks
  uint32_t first = 0;   // first log block
  uint32_t incompat = 0;
  bool valid = false;
};

// Decodes a journal superblock block. False (and *why) when it is not one.
bool decode_journal_superblock(const uint8_t* block, size_t size, JournalGeometry* out, std::string* why);

// One tag of a descriptor: home block `target` gets the image in journal
// block `position` (unescaped if `escaped`).
struct JournalTag {
  uint64_t target = 0;
  uint32_t position = 0;
  bool escaped = false;
};

// Parses a descriptor block at journal position `position`: fills the tags
// (data blocks follow the descriptor, wrapping from maxlen to first).
// Bounded by the block size; false on a malformed block.
bool parse_descriptor(const JournalGeometry& g, const uint8_t* block, uint32_t position,
                      std::vector<JournalTag>* tags, std::string* why);

// Follows journal writes and assembles transactions.
class JournalTracker {
 public:
  explicit JournalTracker(size_t max_cached_blocks) : max_cached_(max_cached_blocks) {}
  void set_geometry(const JournalGeometry& g) { geometry_ = g; }
  const JournalGeometry& geometry() const { return geometry_; }

  // A whole journal block was written at `position`. If it is a commit
  // block, returns true and sets *commit_seq.
  bool block_written(uint32_t position, const uint8_t* block, uint32_t* commit_seq);

  // The tags of transaction `seq` (in log order) and forgets them. The image
  // for each tag: cached_block(tag.position) or, if evicted/lost, the caller
  // reads it back from the disk.
  std::vector<JournalTag> take_transaction(uint32_t seq);
  // The cached image of a journal block (nullptr if not cached).
  const std::vector<uint8_t>* cached_block(uint32_t position) const;

  uint64_t bad_blocks() const { return bad_blocks_; }
  size_t cached_blocks() const { return cache_.size(); }
  const std::string& last_problem() const { return last_problem_; }

 private:
  JournalGeometry geometry_;
  size_t max_cached_;
  std::unordered_map<uint32_t, std::vector<uint8_t>> cache_;
  std::deque<uint32_t> order_;  // FIFO eviction of cache_
  std::map<uint32_t, std::vector<std::vector<JournalTag>>> descriptors_;  // by sequence
  uint64_t bad_blocks_ = 0;
  std::string last_problem_;
};

}  // namespace dsvmi::infer

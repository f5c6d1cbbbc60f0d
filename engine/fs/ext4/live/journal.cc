#include "journal.h"

namespace dsvmi::infer {
namespace {

uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

[[maybe_unused]] constexpr uint32_t kIncompatRevoke = 0x1;  // revokes are not needed (docs/inference.md)
constexpr uint32_t kIncompat64bit = 0x2;
constexpr uint32_t kIncompatCsumV2 = 0x8;
constexpr uint32_t kIncompatCsumV3 = 0x10;
constexpr uint32_t kFlagEscape = 1, kFlagSameUuid = 2, kFlagLastTag = 8;

}  // namespace

bool decode_journal_superblock(const uint8_t* b, size_t size, JournalGeometry* out, std::string* why) {
  if (size < 1024) {
    *why = "journal superblock: block too small";
    return false;
  }
  if (be32(b) != kJbd2Magic) {
    *why = "journal superblock: bad magic";
    return false;
  }
  uint32_t type = be32(b + 4);
  if (type != kJbd2SuperblockV1 && type != kJbd2SuperblockV2) {
    *why = "journal superblock: block type " + std::to_string(type) + " is not a superblock";
    return false;
  }
  JournalGeometry g;
  g.block_size = be32(b + 12);
  g.maxlen = be32(b + 16);
  g.first = be32(b + 20);
  g.incompat = type == kJbd2SuperblockV2 ? be32(b + 40) : 0;
  if (g.block_size < 1024 || g.block_size > 65536 || (g.block_size & (g.block_size - 1)) != 0) {
    *why = "journal superblock: block size " + std::to_string(g.block_size) + " is invalid";
    return false;
  }
  if (g.first == 0 || g.first >= g.maxlen) {
    *why = "journal superblock: first log block " + std::to_string(g.first) + " outside 1.." +
           std::to_string(g.maxlen);
    return false;
  }
  g.valid = true;
  *out = g;
  return true;
}

bool parse_descriptor(const JournalGeometry& g, const uint8_t* b, uint32_t position, std::vector<JournalTag>* tags,
                      std::string* why) {
  tags->clear();
  if (!g.valid) {
    *why = "journal: descriptor before a valid journal superblock";
    return false;
  }
  const bool v3 = g.incompat & kIncompatCsumV3;
  const bool v2 = g.incompat & kIncompatCsumV2;
  const bool is64 = g.incompat & kIncompat64bit;
  size_t tag_bytes;
  if (v3) {
    tag_bytes = 16;
  } else {
    tag_bytes = 12 + (v2 ? 2 : 0);
    if (!is64) tag_bytes -= 4;
  }
  const size_t limit = g.block_size - ((v2 || v3) ? 4 : 0);  // jbd2_journal_block_tail
  size_t off = 12;
  uint32_t pos = position;
  auto advance = [&](uint32_t p) {
    p++;
    if (p >= g.maxlen) p = g.first;
    return p;
  };
  // A descriptor holds at most (block_size - 12) / 8 tags: also the loop bound.
  while (off + tag_bytes <= limit) {
    const uint8_t* t = b + off;
    uint64_t block = be32(t);
    uint32_t flags;
    if (v3) {
      flags = be32(t + 4);
      if (is64) block |= uint64_t{be32(t + 8)} << 32;
    } else {
      flags = be16(t + 6);
      if (is64) block |= uint64_t{be32(t + 8)} << 32;
    }
    off += tag_bytes;
    if (!(flags & kFlagSameUuid)) off += 16;
    pos = advance(pos);
    tags->push_back(JournalTag{block, pos, (flags & kFlagEscape) != 0});
    if (flags & kFlagLastTag) return true;
    if (off > limit) break;
  }
  if (tags->empty()) {
    *why = "journal: descriptor block has no tags";
    return false;
  }
  return true;  // no LAST_TAG flag: the kernel then stops at the end of the block too
}

bool JournalTracker::block_written(uint32_t position, const uint8_t* block, uint32_t* commit_seq) {
  if (!geometry_.valid || position >= geometry_.maxlen) return false;
  const uint32_t bs = geometry_.block_size;
  auto it = cache_.find(position);
  if (it == cache_.end()) {
    order_.push_back(position);
    it = cache_.emplace(position, std::vector<uint8_t>()).first;
  }
  it->second.assign(block, block + bs);
  while (cache_.size() > max_cached_ && !order_.empty()) {
    cache_.erase(order_.front());
    order_.pop_front();
  }
  if (order_.size() > 4 * max_cached_ + 16) {
    // Positions rewritten many times left stale queue entries: compact.
    std::deque<uint32_t> fresh;
    for (uint32_t p : order_) if (cache_.count(p)) fresh.push_back(p);
    order_.swap(fresh);
  }
  if (be32(block) != kJbd2Magic) return false;
  const uint32_t type = be32(block + 4), seq = be32(block + 8);
  if (type == kJbd2Descriptor) {
    std::vector<JournalTag> tags;
    std::string why;
    if (!parse_descriptor(geometry_, block, position, &tags, &why)) {
      bad_blocks_++;
      last_problem_ = why;
      return false;
    }
    auto& list = descriptors_[seq];
    if (list.size() < 1024) list.push_back(std::move(tags));  // bound per transaction
    // Transactions that never committed (crash, lost frames) are dropped
    // once the log has moved far beyond them.
    while (descriptors_.size() > 64) descriptors_.erase(descriptors_.begin());
    return false;
  }
  if (type == kJbd2Commit) {
    *commit_seq = seq;
    return true;
  }
  if (type == kJbd2SuperblockV1 || type == kJbd2SuperblockV2) {
    JournalGeometry g;
    std::string why;
    if (position == 0 && decode_journal_superblock(block, bs, &g, &why) && g.block_size == bs) {
      geometry_ = g;
    }
  }
  return false;  // revoke blocks: applying commits in log order needs no revoke table
}

std::vector<JournalTag> JournalTracker::take_transaction(uint32_t seq) {
  std::vector<JournalTag> all;
  auto it = descriptors_.find(seq);
  if (it == descriptors_.end()) return all;
  for (auto& d : it->second) all.insert(all.end(), d.begin(), d.end());
  // Older transactions can no longer commit after this one.
  descriptors_.erase(descriptors_.begin(), std::next(it));
  return all;
}

const std::vector<uint8_t>* JournalTracker::cached_block(uint32_t position) const {
  auto it = cache_.find(position);
  return it == cache_.end() ? nullptr : &it->second;
}

}  // namespace dsvmi::infer

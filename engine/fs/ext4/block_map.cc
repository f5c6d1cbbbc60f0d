// Block maps: ext4 extent trees and ext2/3 indirect maps, turned into
// Extent runs. Every node is checked before it is followed: header magic,
// entry counts within the node's capacity, depth <= 5 and one less per level,
// logical blocks increasing, physical blocks inside the file system, no node
// read twice for one inode, and no more node reads in total than the file
// system has blocks (which bounds the work hostile shared subtrees can cause).
#include "crawler.h"
#include "crc32c.h"
#include "ext4_format.h"

namespace dsvmi::ext4 {

void Crawler::add_data(uint64_t ino, uint64_t logical, uint64_t physical, uint32_t length, bool unwritten,
                       std::vector<Extent>* out) {
  if (!block_in_fs(physical, length)) {
    problem(ino, physical, "block map: data run of " + std::to_string(length) + " blocks at block " +
                               std::to_string(physical) + " lies outside the file system");
    return;
  }
  if (!out->empty()) {
    Extent& last = out->back();
    if (last.unwritten == unwritten && last.logical + last.length == logical &&
        last.physical + last.length == physical && uint64_t{last.length} + length <= 0xFFFFFFFFu) {
      last.length += length;
      return;
    }
  }
  out->push_back(Extent{logical, physical, length, unwritten});
}

bool Crawler::map_node(uint64_t ino, uint64_t block, unsigned level) {
  if (!block_in_fs(block)) {
    problem(ino, block, "block map: node at block " + std::to_string(block) + " lies outside the file system");
    return false;
  }
  if (!visited_nodes_.insert(block).second) {
    problem(ino, block, "block map: node at block " + std::to_string(block) + " is referenced twice (loop)");
    return false;
  }
  if (map_nodes_read_ >= sb_.blocks_count) {
    if (!map_budget_exhausted_) {
      problem(ino, block, "block map: more map nodes than the file system has blocks; not following any more");
    }
    map_budget_exhausted_ = true;
    return false;
  }
  map_nodes_read_++;
  runs_.add(BlockKind::MapNode, block, 1, ino);
  std::vector<unsigned char>& buf = level_buffers_[level];
  buf.resize(sb_.block_size);
  Status s = read_blocks(block, 1, buf.data());
  if (!s) {
    problem(ino, block, "block map: " + s.message());
    return false;
  }
  return true;
}

void Crawler::walk_extent_node(uint64_t ino, const unsigned char* node, size_t length, int expected_depth,
                               uint32_t csum_seed, uint64_t* next_logical, std::vector<Extent>* out) {
  uint16_t magic = le16(node), entries = le16(node + 2), max = le16(node + 4), depth = le16(node + 6);
  const bool root = expected_depth < 0;
  auto where = [&] { return root ? std::string("in the inode") : std::string("in a tree node"); };
  if (magic != kExtentMagic) {
    problem(ino, 0, "extent tree: bad header magic " + std::to_string(magic) + " " + where());
    return;
  }
  size_t capacity = (length - 12) / 12;
  if (max > capacity || entries > max) {
    problem(ino, 0, "extent tree: " + std::to_string(entries) + " entries (max " + std::to_string(max) +
                        ") do not fit " + where());
    return;
  }
  if (depth > kMaxExtentDepth || (!root && depth != static_cast<unsigned>(expected_depth))) {
    problem(ino, 0, "extent tree: depth " + std::to_string(depth) + " is invalid " + where());
    return;
  }
  if (!root && sb_.metadata_csum() && 12 + 12 * size_t{max} + 4 <= length) {
    uint32_t want = le32(node + 12 + 12 * size_t{max});
    if (crc32c_update(csum_seed, node, 12 + 12 * size_t{max}) != want) {
      problem(ino, 0, "extent tree: node checksum mismatch");
    }
  }
  if (depth == 0) {
    for (unsigned i = 0; i < entries; i++) {
      const unsigned char* e = node + 12 + 12 * i;
      uint32_t logical = le32(e);
      uint32_t len = le16(e + 4);
      bool unwritten = len > 32768;
      if (unwritten) len -= 32768;
      uint64_t physical = uint64_t{le16(e + 6)} << 32 | le32(e + 8);
      if (len == 0) {
        problem(ino, physical, "extent tree: zero-length extent");
        continue;
      }
      if (logical < *next_logical) {
        problem(ino, physical, "extent tree: extent at logical block " + std::to_string(logical) +
                                   " overlaps or precedes the previous one");
        continue;
      }
      add_data(ino, logical, physical, len, unwritten, out);
      *next_logical = uint64_t{logical} + len;
    }
    return;
  }
  uint64_t previous_key = 0;
  for (unsigned i = 0; i < entries; i++) {
    const unsigned char* e = node + 12 + 12 * i;
    uint32_t key = le32(e);
    uint64_t child = uint64_t{le16(e + 8)} << 32 | le32(e + 4);
    if (i > 0 && key <= previous_key) {
      problem(ino, child, "extent tree: index keys are not increasing");
      continue;
    }
    previous_key = key;
    if (!map_node(ino, child, depth - 1)) continue;
    // level_buffers_[depth - 1] is this child's buffer; deeper levels use
    // lower indexes, so it stays valid while the child is walked.
    walk_extent_node(ino, level_buffers_[depth - 1].data(), sb_.block_size, depth - 1, csum_seed, next_logical,
                     out);
  }
}

void Crawler::map_extent_tree(uint64_t ino, const unsigned char* i_block, uint32_t csum_seed,
                              std::vector<Extent>* out) {
  visited_nodes_.clear();
  uint64_t next_logical = 0;
  walk_extent_node(ino, i_block, 60, -1, csum_seed, &next_logical, out);
}

void Crawler::walk_indirect(uint64_t ino, uint64_t block, unsigned level, uint64_t base, std::vector<Extent>* out) {
  if (!map_node(ino, block, level)) return;
  const uint64_t per_block = sb_.block_size / 4;
  uint64_t span = 1;
  for (unsigned l = 1; l < level; l++) span *= per_block;
  const unsigned char* p = level_buffers_[level].data();
  for (uint64_t j = 0; j < per_block; j++) {
    uint32_t ptr = le32(p + 4 * j);
    if (ptr == 0) continue;
    if (level == 1) {
      add_data(ino, base + j, ptr, 1, false, out);
    } else {
      walk_indirect(ino, ptr, level - 1, base + j * span, out);
      p = level_buffers_[level].data();
    }
  }
}

void Crawler::map_indirect(uint64_t ino, const unsigned char* i_block, std::vector<Extent>* out) {
  visited_nodes_.clear();
  const uint64_t per_block = sb_.block_size / 4;
  for (unsigned i = 0; i < 12; i++) {
    uint32_t ptr = le32(i_block + 4 * i);
    if (ptr != 0) add_data(ino, i, ptr, 1, false, out);
  }
  uint64_t base = 12;
  uint64_t span = per_block;
  for (unsigned level = 1; level <= 3; level++) {
    uint32_t ptr = le32(i_block + 4 * (11 + level));
    if (ptr != 0) walk_indirect(ino, ptr, level, base, out);
    base += span;
    span *= per_block;
  }
}

}  // namespace dsvmi::ext4

// RFC 6962 Merkle Tree Hash, kept level by level (merkle_levels.h).
#include "engine/hash/merkle_levels.h"

#include <algorithm>

#include "engine/hash/sha256_state.h"

namespace dsvmi {
namespace {

Sha256Digest node_hash(const Sha256Digest& left, const Sha256Digest& right) {
  static const uint8_t kNode = 0x01;
  Sha256State s;
  s.update(&kNode, 1);
  s.update(left.data(), left.size());
  s.update(right.data(), right.size());
  return s.finish();
}

}  // namespace

Sha256Digest merkle_leaf_hash(std::span<const uint8_t> leaf) {
  static const uint8_t kLeaf = 0x00;
  Sha256State s;
  s.update(&kLeaf, 1);
  s.update(leaf.data(), leaf.size());
  return s.finish();
}

void MerkleLevels::update(uint64_t leaf_count, std::span<const uint64_t> dirty, std::span<const Sha256Digest> hashes) {
  if (levels_.empty()) levels_.emplace_back();
  std::vector<Sha256Digest>& leaves = levels_[0];
  uint64_t old_count = leaves.size();
  leaves.resize(leaf_count);
  for (size_t i = 0; i < dirty.size(); ++i) leaves[dirty[i]] = hashes[i];

  // Nodes to recompute on each level: parents of changed children, and the
  // tail where the count changed (an unpaired node may now be paired).
  std::vector<uint64_t> changed(dirty.begin(), dirty.end());
  size_t level = 0;
  uint64_t old_len = old_count;
  while (levels_[level].size() > 1) {
    if (levels_.size() == level + 1) levels_.emplace_back();  // before taking references
    const std::vector<Sha256Digest>& below = levels_[level];
    uint64_t len = (below.size() + 1) / 2;
    std::vector<Sha256Digest>& up = levels_[level + 1];
    uint64_t up_old = up.size();
    up.resize(len);
    std::vector<uint64_t> parents;
    parents.reserve(changed.size() + 1);
    for (uint64_t c : changed) parents.push_back(c / 2);
    if (old_len != below.size()) {
      uint64_t common = std::min<uint64_t>(old_len, below.size());
      for (uint64_t p = common == 0 ? 0 : (common - 1) / 2; p < len; ++p) parents.push_back(p);
    }
    std::sort(parents.begin(), parents.end());
    parents.erase(std::unique(parents.begin(), parents.end()), parents.end());
    for (uint64_t p : parents) {
      if (p >= len) continue;
      up[p] = 2 * p + 1 < below.size() ? node_hash(below[2 * p], below[2 * p + 1]) : below[2 * p];
    }
    changed = std::move(parents);
    old_len = up_old;
    ++level;
  }
  levels_.resize(level + 1);
}

Sha256Digest MerkleLevels::root() const {
  if (levels_.empty() || levels_.back().empty()) return Sha256State().finish();  // SHA-256("")
  return levels_.back()[0];
}

size_t MerkleLevels::memory_bytes() const {
  size_t n = 0;
  for (const auto& l : levels_) n += l.capacity() * sizeof(Sha256Digest);
  return n;
}

Sha256Digest merkle_tree_hash(std::span<const Sha256Digest> leaf_hashes) {
  MerkleLevels t;
  std::vector<uint64_t> all(leaf_hashes.size());
  for (uint64_t i = 0; i < all.size(); ++i) all[i] = i;
  t.update(all.size(), all, leaf_hashes);
  return t.root();
}

}  // namespace dsvmi

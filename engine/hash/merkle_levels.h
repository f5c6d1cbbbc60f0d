// MerkleLevels: every level of an RFC 6962 Merkle tree over leaf hashes,
// kept so that changing k leaves costs O(k log n) node hashes.
//
// Pairing nodes bottom-up and carrying an unpaired last node up unchanged
// gives the same root as RFC 6962's recursive split at the largest power of
// two below the count (docs/hashes.md), so the levels are plain arrays.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dsvmi/content_hash.h"

namespace dsvmi {

class MerkleLevels {
 public:
  // The tree now has `leaf_count` leaves; `dirty` (sorted, unique, each <
  // leaf_count) got the hashes `hashes` (same order). Every index at or past
  // the old count must be in `dirty`.
  void update(uint64_t leaf_count, std::span<const uint64_t> dirty, std::span<const Sha256Digest> hashes);
  Sha256Digest root() const;
  size_t memory_bytes() const;

 private:
  std::vector<std::vector<Sha256Digest>> levels_;  // [0]: leaf hashes
};

}  // namespace dsvmi

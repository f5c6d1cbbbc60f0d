// The File Allocation Table: one entry per cluster, each naming the next
// cluster of a chain, end-of-chain, free or bad. FatTable holds the decoded
// active copy; ChainWalker follows chains through it and claims every cluster
// it visits, so a loop or a cross-linked chain is found the moment it closes
// and the total work of a crawl is at most one step per cluster.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bpb.h"

namespace dsvmi::fat {

class FatTable {
 public:
  enum class Kind : uint8_t { Free, Next, End, Bad, Reserved };

  // Bytes of one FAT copy that hold entries 0 .. cluster_count + 1.
  static uint64_t used_bytes(const Geometry& g);

  // Decodes `raw` (used_bytes(g) bytes of the active copy).
  void decode(const Geometry& g, const unsigned char* raw, size_t length);

  // Compares another copy's raw bytes with the decoded table; returns the
  // number of entries that differ and the first of them (in *first).
  uint64_t compare(const unsigned char* raw, size_t length, uint32_t* first) const;

  // Entry of cluster `c` (2 <= c < entries()) and what it means.
  uint32_t entry(uint32_t c) const { return entries_[c]; }
  Kind kind(uint32_t c) const;
  size_t entries() const { return entries_.size(); }
  uint64_t free_clusters() const { return free_; }

 private:
  uint32_t read_raw(const unsigned char* raw, size_t length, uint32_t c) const;

  unsigned bits_ = 32;
  uint32_t cluster_count_ = 0;
  uint64_t free_ = 0;
  std::vector<uint32_t> entries_;
};

// A run of consecutive clusters of one chain.
struct ClusterRun {
  uint64_t logical = 0;  // cluster index within the chain
  uint32_t first = 0;    // cluster number
  uint32_t count = 0;
};

struct Chain {
  enum class End : uint8_t {
    Complete,    // reached an end-of-chain mark
    Limit,       // stopped at the caller's length limit
    Loop,        // came back to one of its own clusters
    CrossLink,   // ran into a cluster another chain owns (other_owner)
    Bad,         // a bad-cluster mark inside the chain
    Free,        // a free entry inside the chain
    Invalid,     // an entry naming no data cluster
  };
  End end = End::Complete;
  uint32_t at = 0;           // the cluster where it stopped (not included)
  uint64_t other_owner = 0;  // CrossLink: the owner of `at`
  uint64_t clusters = 0;     // clusters in `runs`
  std::vector<ClusterRun> runs;
};

class ChainWalker {
 public:
  ChainWalker(const Geometry& g, const FatTable& fat);

  // Follows the chain from `first`, claiming at most `limit` clusters for
  // `owner`. A first cluster that is invalid or already owned yields an
  // empty chain (end Invalid / CrossLink).
  void walk(uint32_t first, uint64_t limit, uint64_t owner, Chain* out);

  bool claimed(uint32_t c) const { return c < owner_of_.size() && owner_of_[c] != 0; }

  // Why a chain ended, for a problem report ("" when it ended cleanly).
  static std::string describe(const Chain& chain);

 private:
  const Geometry& g_;
  const FatTable& fat_;
  std::vector<uint32_t> owner_of_;  // chain id per cluster, 0 = unclaimed
  std::vector<uint64_t> chain_owner_{0};  // chain id -> owner
};

}  // namespace dsvmi::fat

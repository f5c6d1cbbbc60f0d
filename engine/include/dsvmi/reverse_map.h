// ReverseMap: the engine's mutable view of one file system: the immutable,
// mmap'ed FsIndex underneath and a small overlay of changes on top.
//
// Why an overlay: the crawl index is large, shared read-only and verified
// once; the inference engine (docs/inference.md) changes a tiny part of it while the
// guest runs. Updates touch only the overlay (an ordered map of
// non-overlapping block runs, O(log n) per update), lookups consult the
// overlay first and fall back to the index. A later crawl (or a compaction
// that re-serializes index + overlay) folds the overlay back in.
//
// Names and inode attributes get the same treatment: an added/removed link
// set and an inode override map (sketched below; block ownership is what the
// gate and the crawl commands need today).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dsvmi/index.h"

namespace dsvmi {

class ReverseMap {
 public:
  explicit ReverseMap(const FsIndex& base) : base_(&base) {}

  // What `block` is now. For data-like kinds (FileData, Directory, Journal)
  // `logical` is that of this very block.
  Status owner(uint64_t block, BlockOwner* out) const;

  // From now on blocks [first, first + count) are `owner`; for data-like
  // kinds owner.logical is the logical block of `first` and advances by one
  // per block. Replaces whatever the index or earlier updates said.
  void assign(uint64_t first, uint64_t count, const BlockOwner& owner);
  // The blocks become free (a file truncated or deleted).
  void release(uint64_t first, uint64_t count) { assign(first, count, BlockOwner{}); }

  // Names: the overlay's view of directory entries.
  void add_link(uint64_t parent, const std::string& name, const DirEntry& entry);
  void remove_link(uint64_t parent, const std::string& name);
  // Entry `name` of `parent`, overlay first. Not found: error.
  Status find(uint64_t parent, const std::string& name, DirEntry* out) const;

  // Inode attributes: an updated record wins over the index.
  void put_inode(const Inode& inode) { inodes_[inode.ino] = inode; dropped_.erase(inode.ino); }
  void drop_inode(uint64_t ino) { inodes_.erase(ino); dropped_.insert(ino); }
  Status inode(uint64_t ino, Inode* out) const;

  size_t overlay_runs() const { return runs_.size(); }

 private:
  struct Run {
    uint64_t end;  // exclusive
    BlockOwner owner;
  };
  void split_at(uint64_t block);

  const FsIndex* base_;
  std::map<uint64_t, Run> runs_;  // keyed by first block, non-overlapping
  std::map<std::pair<uint64_t, std::string>, DirEntry> added_links_;
  std::set<std::pair<uint64_t, std::string>> removed_links_;
  std::unordered_map<uint64_t, Inode> inodes_;
  std::set<uint64_t> dropped_;
};

}  // namespace dsvmi

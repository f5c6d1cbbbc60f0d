// FsState: the engine's model of one file system — the crawl index
// underneath (read lazily, record by record) and an overlay of what changed
// since. Only touched inodes and directories are ever materialized, which is
// what keeps memory proportional to the change, not to the file system.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "change_plan.h"
#include "dsvmi/fs_model.h"
#include "dsvmi/index.h"

namespace dsvmi::infer {

class FsState : public NameTree {
 public:
  FsState(const FsIndex& base, uint64_t root_ino) : base_(base), root_(root_ino) {}

  uint64_t root() const override { return root_; }
  // The inode's attributes, or nullptr when the inode is free.
  const Inode* inode(uint64_t ino);
  void set_inode(const Inode& inode);
  void free_inode(uint64_t ino);
  // Whether inode(ino)->generation is the inode's real i_generation: true
  // once the engine decoded it, and for every indexed inode when the index
  // keeps generations (docs/index.md). An older index reports 0, which says
  // nothing: comparing it with a decoded one would call every inode the
  // kernel created before the crawl "reused".
  bool generation_known(uint64_t ino) const { return base_.generations_known() || decoded_.count(ino) != 0; }

  // Entries of a directory (not "." / ".."), by name.
  const std::map<std::string, DirEntry>& entries(uint64_t dir);
  // Adds/removes one name, keeping the inode's link list in step.
  void add_entry(uint64_t dir, const DirEntry& entry) override;
  void remove_entry(uint64_t dir, const std::string& name) override;
  const DirEntry* find(uint64_t dir, const std::string& name) override;
  bool has_entries(uint64_t dir) override { return !entries(dir).empty(); }

  // Entries of a directory without materializing it (the overlay's if it was
  // touched, else the index's): for whole-tree walks.
  void peek_entries(uint64_t dir, std::vector<DirEntry>* out) const;

  // Names of an inode.
  const std::vector<Link>& links(uint64_t ino);
  // Full path through the first name of each ancestor; false if the inode
  // is not reachable from the root (orphan, cycle, depth bound).
  bool path(uint64_t ino, std::string* out) override;
  bool parent(uint64_t ino, uint64_t* dir) override;

  size_t materialized_inodes() const { return inodes_.size(); }

 private:
  const FsIndex& base_;
  uint64_t root_;
  std::unordered_map<uint64_t, std::optional<Inode>> inodes_;
  std::unordered_map<uint64_t, std::map<std::string, DirEntry>> dirs_;
  std::unordered_map<uint64_t, std::vector<Link>> links_;
  std::unordered_set<uint64_t> decoded_;  // inodes set by set_inode()
};

// Whether two extent lists map the same blocks the same way.
bool same_extents(const std::vector<Extent>& a, const std::vector<Extent>& b);
// The inode as events carry it: without its extent list.
Inode without_extents(const Inode& n);
// The model's tree as InferenceEngine::dump_state() lines (inference.h),
// breadth-first from the root; `partition` != 0 is added to each line.
void dump_tree(FsState& state, uint32_t partition, std::vector<std::string>* lines);

}  // namespace dsvmi::infer

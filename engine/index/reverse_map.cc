#include "dsvmi/reverse_map.h"

namespace dsvmi {
namespace {

bool data_like(BlockKind k) {
  return k == BlockKind::FileData || k == BlockKind::Directory || k == BlockKind::Journal;
}

}  // namespace

Status ReverseMap::owner(uint64_t block, BlockOwner* out) const {
  auto it = runs_.upper_bound(block);
  if (it != runs_.begin()) {
    --it;
    if (block < it->second.end) {
      *out = it->second.owner;
      if (data_like(out->kind)) out->logical += block - it->first;
      return Status::ok();
    }
  }
  return base_->owner(block, out);
}

// Makes `block` the start of a run if a run covers it.
void ReverseMap::split_at(uint64_t block) {
  auto it = runs_.upper_bound(block);
  if (it == runs_.begin()) return;
  --it;
  if (it->first == block || block >= it->second.end) return;
  Run right = it->second;
  if (data_like(right.owner.kind)) right.owner.logical += block - it->first;
  it->second.end = block;
  runs_.emplace(block, right);
}

void ReverseMap::assign(uint64_t first, uint64_t count, const BlockOwner& owner) {
  if (count == 0 || first + count < first) return;
  const uint64_t end = first + count;
  split_at(first);
  split_at(end);
  runs_.erase(runs_.lower_bound(first), runs_.lower_bound(end));
  runs_.emplace(first, Run{end, owner});
}

void ReverseMap::add_link(uint64_t parent, const std::string& name, const DirEntry& entry) {
  removed_links_.erase({parent, name});
  added_links_[{parent, name}] = entry;
}

void ReverseMap::remove_link(uint64_t parent, const std::string& name) {
  added_links_.erase({parent, name});
  removed_links_.insert({parent, name});
}

Status ReverseMap::find(uint64_t parent, const std::string& name, DirEntry* out) const {
  auto key = std::make_pair(parent, name);
  if (auto it = added_links_.find(key); it != added_links_.end()) {
    *out = it->second;
    return Status::ok();
  }
  if (removed_links_.count(key))
    return Status::error("no entry '" + name + "' in directory inode " + std::to_string(parent));
  return base_->find(parent, name, out);
}

Status ReverseMap::inode(uint64_t ino, Inode* out) const {
  if (auto it = inodes_.find(ino); it != inodes_.end()) {
    *out = it->second;
    return Status::ok();
  }
  if (dropped_.count(ino)) return Status::error("inode " + std::to_string(ino) + " was deleted");
  return base_->inode(ino, out);
}

}  // namespace dsvmi

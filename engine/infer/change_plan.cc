// Ordering the name changes of one consistency point (docs/events.md,
// "Ordering within a consistency point"; docs/inference.md).
#include "change_plan.h"

#include <algorithm>

#include "dsvmi/index.h"

namespace dsvmi::infer {
namespace {

EventKind create_kind(FileType t) {
  if (t == FileType::Directory) return EventKind::Mkdir;
  if (t == FileType::Symlink) return EventKind::Symlink;
  return EventKind::Create;
}

}  // namespace

void ChangePlan::add(uint64_t ino, InodeChange change) { inodes_[ino] = std::move(change); }

bool ChangePlan::fresh(uint64_t ino) const {
  auto it = inodes_.find(ino);
  return it != inodes_.end() && it->second.now && (!it->second.old || it->second.new_incarnation);
}

void ChangePlan::build() {
  auto new_incarnation = [&](uint64_t ino) {
    auto it = inodes_.find(ino);
    return it != inodes_.end() && it->second.new_incarnation;
  };
  struct Name {
    uint64_t dir;
    const DirEntry* entry;
  };
  std::map<uint64_t, std::vector<Name>> removed, added;  // by inode of the entry
  for (const auto& [dir, c] : inodes_) {
    const bool old_dir = c.old && c.old->type == FileType::Directory;
    const bool new_dir = c.now && c.now->type == FileType::Directory;
    // A directory's names go with it when it stops being the same directory.
    const bool same_dir = old_dir && new_dir && !c.new_incarnation;
    std::map<std::string, const DirEntry*> now;
    if (new_dir) {
      for (const DirEntry& e : c.now_entries) now.emplace(e.name, &e);  // first of duplicates wins
    }
    if (old_dir) {
      for (const auto& [name, e] : c.old_entries) {
        auto n = now.find(name);
        if (!same_dir || n == now.end() || n->second->ino != e.ino || new_incarnation(e.ino)) {
          removed[e.ino].push_back({dir, &e});
        }
      }
    }
    for (const auto& [name, e] : now) {
      auto o = same_dir ? c.old_entries.find(name) : c.old_entries.end();
      if (o == c.old_entries.end() || o->second.ino != e->ino || new_incarnation(e->ino)) {
        added[e->ino].push_back({dir, e});
      }
    }
  }
  std::set<uint64_t> inos;
  for (const auto& [i, v] : removed) inos.insert(i);
  for (const auto& [i, v] : added) inos.insert(i);
  const std::vector<Name> none;
  for (uint64_t i : inos) {
    auto r = removed.find(i);
    auto a = added.find(i);
    const std::vector<Name>& R = r == removed.end() ? none : r->second;
    const std::vector<Name>& A = a == added.end() ? none : a->second;
    auto c = inodes_.find(i);
    const bool had_old = c != inodes_.end() && c->second.old.has_value();
    const bool freed = had_old && (!c->second.now || c->second.new_incarnation);
    touched_.insert(i);
    if (freed || fresh(i)) {
      // Two files at most, never one: the old one's names all go, the new
      // one's all come.
      for (const Name& n : R) {
        ops_.push_back(Op{freed ? Op::RemoveOld : Op::Unlink, i, n.entry->type, n.dir, n.entry->name});
      }
      if (freed) old_names_left_[i] = R.size();
      for (const Name& n : A) ops_.push_back(Op{Op::Add, i, n.entry->type, n.dir, n.entry->name});
      continue;
    }
    // The same file: pair lost names with gained ones as renames (the disk
    // cannot tell a rename from link + unlink); the rest are links/unlinks.
    const size_t pairs = std::min(R.size(), A.size());
    for (size_t k = 0; k < pairs; k++) {
      Op op{Op::Rename, i, A[k].entry->type, A[k].dir, A[k].entry->name};
      op.from_dir = R[k].dir;
      op.from_name = R[k].entry->name;
      ops_.push_back(std::move(op));
    }
    for (size_t k = pairs; k < A.size(); k++) {
      ops_.push_back(Op{Op::Add, i, A[k].entry->type, A[k].dir, A[k].entry->name});
    }
    for (size_t k = pairs; k < R.size(); k++) {
      ops_.push_back(Op{Op::Unlink, i, R[k].entry->type, R[k].dir, R[k].entry->name});
    }
  }
}

// A name may go into `dir` once `dir` is the directory of the new state: a
// new directory (or a new file at a reused number) must have been created.
bool ChangePlan::destination_ready(NameTree& tree, uint64_t dir) {
  if (fresh(dir) && created_.count(dir) == 0) return false;
  std::string p;
  return tree.path(dir, &p);
}

bool ChangePlan::applicable(NameTree& tree, const Op& op) {
  switch (op.type) {
    case Op::RemoveOld:
    case Op::Unlink: {
      const DirEntry* e = tree.find(op.dir, op.name);
      if (e == nullptr || e->ino != op.ino) return false;
      // Children first: a directory's last name goes once it is empty.
      if (op.type == Op::RemoveOld && old_names_left_[op.ino] == 1 &&
          inodes_[op.ino].old->type == FileType::Directory && tree.has_entries(op.ino))
        return false;
      return true;
    }
    case Op::Add: {
      // Every name of the old file at this number goes before the new one.
      auto left = old_names_left_.find(op.ino);
      if (left != old_names_left_.end() && left->second != 0) return false;
      return tree.find(op.dir, op.name) == nullptr && destination_ready(tree, op.dir);
    }
    case Op::Rename: {
      const DirEntry* e = tree.find(op.from_dir, op.from_name);
      if (e == nullptr || e->ino != op.ino) return false;
      if (tree.find(op.dir, op.name) != nullptr || !destination_ready(tree, op.dir)) return false;
      if (op.ftype != FileType::Directory) return true;
      // A directory never goes below itself.
      uint64_t cur = op.dir;
      for (int depth = 0; depth < kMaxPathDepth; depth++) {
        if (cur == op.ino) return false;
        if (cur == tree.root() || !tree.parent(cur, &cur)) return true;
      }
      return false;
    }
  }
  return false;
}

void ChangePlan::apply_op(NameTree& tree, Op& op, std::vector<NameEvent>* out) {
  op.done = true;
  NameEvent e;
  e.ino = op.ino;
  auto name_path = [&](uint64_t dir, const std::string& name) {
    std::string p;
    if (!tree.path(dir, &p)) p = "/<unreachable:" + std::to_string(dir) + ">";
    if (p != "/") p += "/";
    return p + name;
  };
  auto remove_if_ours = [&](uint64_t dir, const std::string& name) {
    const DirEntry* d = tree.find(dir, name);
    if (d != nullptr && d->ino == op.ino) tree.remove_entry(dir, name);
  };
  switch (op.type) {
    case Op::RemoveOld:
    case Op::Unlink: {
      e.kind = EventKind::Unlink;
      e.path = name_path(op.dir, op.name);
      if (op.type == Op::RemoveOld) {
        e.old_incarnation = true;
        size_t& left = old_names_left_[op.ino];
        if (left > 0) left--;
        if (left == 0) {
          e.kind = inodes_[op.ino].old->type == FileType::Directory ? EventKind::Rmdir : EventKind::Delete;
        }
      }
      remove_if_ours(op.dir, op.name);
      removed_at_[{op.dir, op.name}] = op.ino;
      break;
    }
    case Op::Add: {
      e.kind = EventKind::Link;
      if (fresh(op.ino) && created_.insert(op.ino).second) e.kind = create_kind(inodes_[op.ino].now->type);
      if (tree.find(op.dir, op.name) != nullptr) tree.remove_entry(op.dir, op.name);  // forced only
      tree.add_entry(op.dir, DirEntry{op.ino, op.ftype, op.name});
      e.path = name_path(op.dir, op.name);
      break;
    }
    case Op::Rename: {
      e.kind = EventKind::Rename;
      e.old_path = name_path(op.from_dir, op.from_name);
      auto rep = removed_at_.find({op.dir, op.name});
      if (rep != removed_at_.end() && rep->second != op.ino) e.replaced_ino = rep->second;
      remove_if_ours(op.from_dir, op.from_name);
      if (tree.find(op.dir, op.name) != nullptr) tree.remove_entry(op.dir, op.name);  // forced only
      tree.add_entry(op.dir, DirEntry{op.ino, op.ftype, op.name});
      e.path = name_path(op.dir, op.name);
      break;
    }
  }
  out->push_back(std::move(e));
}

// No operation can go (names swapped, a rename cycle, a file moved from a
// directory into the new directory at the same number): move the source of
// one pending rename to a fresh temporary name in the root, which is always
// valid, so the rest can proceed; the rename then goes from there.
bool ChangePlan::park(NameTree& tree, std::vector<NameEvent>* out) {
  const uint64_t root = tree.root();
  for (Op& op : ops_) {
    if (op.done || op.parked || op.type != Op::Rename || op.ino == root) continue;
    const DirEntry* src = tree.find(op.from_dir, op.from_name);
    if (src == nullptr || src->ino != op.ino) continue;
    std::string name;
    for (uint64_t k = 0;; k++) {
      name = kTemporaryPrefix + std::to_string(op.ino) + "-" + std::to_string(k);
      if (tree.find(root, name) != nullptr) continue;
      auto r = inodes_.find(root);
      if (r != inodes_.end() &&
          std::any_of(r->second.now_entries.begin(), r->second.now_entries.end(),
                      [&](const DirEntry& d) { return d.name == name; }))
        continue;
      break;
    }
    Op move{Op::Rename, op.ino, op.ftype, root, name};
    move.from_dir = op.from_dir;
    move.from_name = op.from_name;
    apply_op(tree, move, out);
    op.from_dir = root;
    op.from_name = name;
    op.parked = true;
    temporary_names_++;
    return true;
  }
  return false;
}

void ChangePlan::apply(NameTree& tree, std::vector<NameEvent>* out) {
  size_t remaining = ops_.size();
  // Removals, then renames, then additions, repeated while any can go: the
  // preconditions in applicable() give children-first removal, parents-first
  // creation and old incarnations before new ones.
  static constexpr Op::Type kPasses[] = {Op::RemoveOld, Op::Unlink, Op::Rename, Op::Add};
  while (remaining > 0) {
    bool progress = false;
    for (Op::Type type : kPasses) {
      for (Op& op : ops_) {
        if (op.done || op.type != type || !applicable(tree, op)) continue;
        apply_op(tree, op, out);
        remaining--;
        progress = true;
      }
    }
    if (progress || park(tree, out)) continue;
    // No valid order exists (an inconsistent batch): apply the first
    // remaining operation as is, so nothing is lost.
    for (Op& op : ops_) {
      if (op.done) continue;
      forced_++;
      apply_op(tree, op, out);
      remaining--;
      break;
    }
  }
}

}  // namespace dsvmi::infer

#include "fs_state.h"

#include <algorithm>
#include <set>

#include "dsvmi/events.h"

namespace dsvmi::infer {

const Inode* FsState::inode(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) {
    Inode n;
    std::optional<Inode> v;
    if (base_.inode(ino, &n)) v = std::move(n);
    it = inodes_.emplace(ino, std::move(v)).first;
  }
  return it->second ? &*it->second : nullptr;
}

void FsState::set_inode(const Inode& inode) {
  inodes_[inode.ino] = inode;
  decoded_.insert(inode.ino);
}

void FsState::free_inode(uint64_t ino) {
  inodes_[ino] = std::nullopt;
  decoded_.erase(ino);
  dirs_[ino].clear();
}

const std::map<std::string, DirEntry>& FsState::entries(uint64_t dir) {
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) {
    std::map<std::string, DirEntry> m;
    std::vector<DirEntry> list;
    if (base_.list(dir, &list)) {
      for (DirEntry& e : list) {
        std::string name = e.name;
        m.emplace(std::move(name), std::move(e));
      }
    }
    it = dirs_.emplace(dir, std::move(m)).first;
  }
  return it->second;
}

void FsState::peek_entries(uint64_t dir, std::vector<DirEntry>* out) const {
  out->clear();
  auto it = dirs_.find(dir);
  if (it != dirs_.end()) {
    for (const auto& [name, e] : it->second) out->push_back(e);
    return;
  }
  auto in = inodes_.find(dir);
  if (in != inodes_.end() && (!in->second || in->second->type != FileType::Directory)) return;
  if (!base_.list(dir, out)) out->clear();
}

const std::vector<Link>& FsState::links(uint64_t ino) {
  auto it = links_.find(ino);
  if (it == links_.end()) {
    std::vector<Link> v;
    if (!base_.links(ino, &v)) v.clear();
    // Names the overlay already changed are authoritative: drop base links
    // whose directory has been materialized and no longer holds this name.
    std::vector<Link> kept;
    for (Link& l : v) {
      auto d = dirs_.find(l.parent);
      if (d != dirs_.end()) {
        auto e = d->second.find(l.name);
        if (e == d->second.end() || e->second.ino != ino) continue;
      }
      kept.push_back(std::move(l));
    }
    it = links_.emplace(ino, std::move(kept)).first;
  }
  return it->second;
}

const DirEntry* FsState::find(uint64_t dir, const std::string& name) {
  const auto& m = entries(dir);
  auto it = m.find(name);
  return it == m.end() ? nullptr : &it->second;
}

void FsState::add_entry(uint64_t dir, const DirEntry& entry) {
  entries(dir);
  links(entry.ino);
  auto& m = dirs_[dir];
  auto old = m.find(entry.name);
  if (old != m.end()) remove_entry(dir, entry.name);
  m[entry.name] = entry;
  links_[entry.ino].push_back(Link{dir, entry.name});
}

void FsState::remove_entry(uint64_t dir, const std::string& name) {
  entries(dir);
  auto& m = dirs_[dir];
  auto it = m.find(name);
  if (it == m.end()) return;
  uint64_t ino = it->second.ino;
  links(ino);
  m.erase(it);
  auto& l = links_[ino];
  l.erase(std::remove_if(l.begin(), l.end(), [&](const Link& x) { return x.parent == dir && x.name == name; }),
          l.end());
}

bool FsState::parent(uint64_t ino, uint64_t* dir) {
  const std::vector<Link>& l = links(ino);
  if (l.empty()) return false;
  *dir = l.front().parent;
  return true;
}

bool FsState::path(uint64_t ino, std::string* out) {
  if (ino == root_) {
    out->assign(1, '/');
    return true;
  }
  std::vector<const std::string*> parts;
  uint64_t cur = ino;
  size_t bytes = 0;
  for (int depth = 0; cur != root_; depth++) {
    if (depth >= kMaxPathDepth) return false;
    const std::vector<Link>& l = links(cur);
    if (l.empty()) return false;
    parts.push_back(&l.front().name);
    bytes += l.front().name.size() + 1;
    if (bytes > kMaxPathBytes) return false;
    cur = l.front().parent;
  }
  std::string result;
  result.reserve(bytes);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    result += '/';
    result.append((*it)->data(), (*it)->size());
  }
  *out = std::move(result);
  return true;
}

bool same_extents(const std::vector<Extent>& a, const std::vector<Extent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i].logical != b[i].logical || a[i].physical != b[i].physical || a[i].length != b[i].length ||
        a[i].unwritten != b[i].unwritten)
      return false;
  }
  return true;
}

Inode without_extents(const Inode& n) {
  Inode c = n;
  c.extents.clear();
  return c;
}

void dump_tree(FsState& state, uint32_t partition, std::vector<std::string>* lines) {
  // Breadth-first from the root over the model; bounded by what it holds.
  std::vector<std::pair<uint64_t, std::string>> queue{{state.root(), "/"}};
  std::set<uint64_t> seen_dirs;
  for (size_t q = 0; q < queue.size(); q++) {
    auto [ino, path] = queue[q];
    const Inode* n = state.inode(ino);
    if (n == nullptr) continue;
    Event e;
    e.kind = EventKind::Create;
    std::string line = "{\"path\":";
    json_string(path, &line);
    line += ",\"ino\":" + std::to_string(ino);
    static const char* kTypes[] = {"unknown", "file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"};
    line += ",\"type\":\"" + std::string(kTypes[static_cast<int>(n->type) & 7]) + "\"";
    line += ",\"mode\":" + std::to_string(n->mode) + ",\"uid\":" + std::to_string(n->uid) +
            ",\"gid\":" + std::to_string(n->gid) + ",\"size\":" + std::to_string(n->size) +
            ",\"links\":" + std::to_string(n->links) + ",\"mtime_ns\":" + std::to_string(n->mtime_ns);
    if (n->type == FileType::Symlink) {
      line += ",\"target\":";
      json_string(n->symlink_target, &line);
    }
    if (partition != 0) line += ",\"partition\":" + std::to_string(partition);
    line += "}";
    lines->push_back(std::move(line));
    if (n->type == FileType::Directory && seen_dirs.insert(ino).second) {
      for (const auto& [name, entry] : state.entries(ino)) {
        queue.push_back({entry.ino, path == "/" ? "/" + name : path + "/" + name});
      }
    }
  }
}

}  // namespace dsvmi::infer

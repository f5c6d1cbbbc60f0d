// A random, self-consistent file system described as CrawlSink calls, with
// its reference model (plain std containers) to check the index against.
#pragma once

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/index.h"

namespace dsvmi::test {

struct SyntheticFs {
  FilesystemInfo info;
  std::map<uint64_t, Inode> inodes;
  std::map<uint64_t, std::map<std::string, DirEntry>> dirs;  // dir -> name -> entry
  std::map<uint64_t, std::string> path_of;                   // one path per non-root inode (dirs: the only one)
  std::vector<BlockOwner> blocks;                            // reference reverse map
  struct MetaRun { BlockKind kind; uint64_t first, count, owner; };
  std::vector<MetaRun> meta;

  // Replays the file system into `sink` in a shuffled order.
  void replay(CrawlSink& sink, uint32_t seed) const {
    std::mt19937 rng(seed);
    sink.begin_filesystem(info);
    std::vector<int> order;
    std::vector<const Inode*> ins;
    std::vector<std::pair<uint64_t, const DirEntry*>> ents;
    for (auto& [ino, in] : inodes) ins.push_back(&in);
    for (auto& [d, m] : dirs)
      for (auto& [n, e] : m) ents.push_back({d, &e});
    std::shuffle(ins.begin(), ins.end(), rng);
    std::shuffle(ents.begin(), ents.end(), rng);
    size_t a = 0, b = 0, c = 0;
    while (a < ins.size() || b < ents.size() || c < meta.size()) {
      switch (rng() % 3) {
        case 0: if (a < ins.size()) sink.inode(*ins[a++]); break;
        case 1: if (b < ents.size()) sink.dir_entry(ents[b].first, *ents[b].second), ++b; break;
        default:
          if (c < meta.size()) {
            const auto& m = meta[c++];
            sink.blocks(m.kind, m.first, m.count, m.owner, 0);
          }
      }
    }
    sink.end_filesystem();
  }
};

// Builds a random tree of about `n` inodes.
inline SyntheticFs make_synthetic_fs(uint32_t seed, int n, uint64_t partition_offset, uint32_t block_size) {
  std::mt19937 rng(seed);
  SyntheticFs fs;
  fs.info.type = "ext4";
  fs.info.uuid = "0b2d7a1c-3e4f-4a5b-8c9d-aabbccddeeff";
  fs.info.partition_offset = partition_offset;
  fs.info.block_size = block_size;
  fs.info.block_count = 4096 + uint64_t(n) * 24;
  fs.info.partition_size = fs.info.block_count * block_size;
  fs.info.inode_count = uint64_t(n) * 2 + 16;
  fs.info.root_ino = 2;
  fs.info.journal_ino = 8;
  fs.blocks.assign(fs.info.block_count, BlockOwner{});
  uint64_t next_block = 0;
  auto take = [&](uint64_t count) {
    uint64_t first = next_block;
    next_block += count + rng() % 3;  // gaps stay free
    return first;
  };
  // File-system-wide metadata: superblock, GDT, bitmaps, inode table.
  const BlockKind kinds[] = {BlockKind::Superblock, BlockKind::GroupDescriptors, BlockKind::BlockBitmap,
                             BlockKind::InodeBitmap, BlockKind::InodeTable};
  for (int group = 0; group < 3; ++group)
    for (BlockKind k : kinds) {
      uint64_t count = k == BlockKind::InodeTable ? 32 : 1 + rng() % 2;
      uint64_t first = take(count);
      fs.meta.push_back({k, first, count, 0});
      for (uint64_t b = first; b < first + count; ++b) fs.blocks[b] = {k, 0, 0};
    }
  int64_t t0 = 1700000000;
  auto new_inode = [&](uint64_t ino, FileType type) {
    Inode in;
    in.ino = ino;
    in.type = type;
    in.mode = rng() % 07777;
    in.uid = rng() % 3 ? 0 : 1000 + rng() % 5;
    in.gid = rng() % 70000;
    in.links = 1;
    in.mtime_ns = (t0 + int64_t(rng() % 100000)) * 1000000000 + rng() % 1000000000;
    in.ctime_ns = in.mtime_ns + int64_t(rng() % 1000) * 1000000000;
    in.atime_ns = in.ctime_ns;
    return in;
  };
  auto add_extents = [&](Inode& in, int count, BlockKind kind) {
    uint64_t logical = 0;
    for (int e = 0; e < count; ++e) {
      uint32_t len = 1 + rng() % 8;
      uint64_t first = take(len);
      logical += rng() % 3;  // holes
      in.extents.push_back({logical, first, len, rng() % 10 == 0});
      for (uint32_t k = 0; k < len; ++k) fs.blocks[first + k] = {kind, in.ino, logical + k};
      logical += len;
    }
    in.size = logical * fs.info.block_size - rng() % fs.info.block_size;
  };
  Inode root = new_inode(2, FileType::Directory);
  add_extents(root, 1, BlockKind::Directory);
  fs.inodes[2] = root;
  Inode journal = new_inode(8, FileType::Regular);
  add_extents(journal, 2, BlockKind::Journal);
  fs.inodes[8] = journal;
  std::vector<uint64_t> dirs{2};
  std::vector<uint64_t> files;
  fs.path_of[2] = "/";
  auto link = [&](uint64_t dir, const std::string& name, const Inode& in) {
    fs.dirs[dir][name] = DirEntry{in.ino, in.type, name};
    if (!fs.path_of.count(in.ino))
      fs.path_of[in.ino] = (dir == 2 ? "" : fs.path_of[dir]) + "/" + name;
  };
  uint64_t ino = 12;
  for (int i = 0; i < n; ++i, ++ino) {
    const uint64_t dir = dirs[rng() % dirs.size()];
    const std::string name = (rng() % 2 ? "f" : "name with spaces ") + std::to_string(i) +
                             std::string(rng() % 20, 'x');
    const int pick = rng() % 20;
    if (pick < 3) {
      Inode d = new_inode(ino, FileType::Directory);
      add_extents(d, 1 + rng() % 2, BlockKind::Directory);
      fs.inodes[ino] = d;
      link(dir, name, d);
      dirs.push_back(ino);
    } else if (pick < 4) {
      Inode s = new_inode(ino, FileType::Symlink);
      s.symlink_target = std::string(1 + rng() % 200, 'a' + rng() % 26);
      s.size = s.symlink_target.size();
      if (s.size > 60) add_extents(s, 1, BlockKind::FileData), s.size = s.symlink_target.size();
      fs.inodes[ino] = s;
      link(dir, name, s);
    } else if (pick < 5) {
      Inode d = new_inode(ino, rng() % 2 ? FileType::CharDevice : FileType::Fifo);
      if (d.type == FileType::CharDevice) d.rdev = rng() % 65536;
      fs.inodes[ino] = d;
      link(dir, name, d);
    } else if (pick < 6 && !files.empty()) {
      // Hard link to an existing file.
      Inode& f = fs.inodes[files[rng() % files.size()]];
      ++f.links;
      link(dir, name, f);
      --ino;
    } else {
      Inode f = new_inode(ino, FileType::Regular);
      add_extents(f, rng() % 4, BlockKind::FileData);
      if (f.extents.empty()) f.size = rng() % 50;
      if (rng() % 5 == 0) {  // an extent tree node owned by the file
        uint64_t b = take(1);
        fs.meta.push_back({BlockKind::MapNode, b, 1, f.ino});
        fs.blocks[b] = {BlockKind::MapNode, f.ino, 0};
      }
      fs.inodes[ino] = f;
      link(dir, name, f);
      files.push_back(ino);
    }
  }
  // Directory link counts like ext4: 2 + subdirectories.
  for (uint64_t d : dirs) {
    uint32_t sub = 0;
    for (auto& [nm, e] : fs.dirs[d]) sub += e.type == FileType::Directory;
    fs.inodes[d].links = 2 + sub;
  }
  if (next_block > fs.info.block_count) std::abort();
  return fs;
}

}  // namespace dsvmi::test

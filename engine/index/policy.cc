#include "dsvmi/policy.h"

#include <roaring/roaring.h>

#include <unordered_set>

#include "dsvmi/glob.h"

namespace dsvmi {
namespace {

constexpr BlockKind kMetadataKinds[] = {
    BlockKind::Superblock, BlockKind::GroupDescriptors, BlockKind::BlockBitmap, BlockKind::InodeBitmap,
    BlockKind::InodeTable, BlockKind::Directory,        BlockKind::MapNode,     BlockKind::Journal,
    BlockKind::Xattr};

Status add_metadata(const FsIndex& fs, uint32_t grain_size, roaring_bitmap_t* grains, GatePolicyStats* st) {
  const FilesystemInfo info = fs.info();
  roaring_bitmap_t* all = roaring_bitmap_create();
  for (BlockKind k : kMetadataKinds)
    if (const roaring_bitmap_t* b = fs.kind_bitmap(k)) roaring_bitmap_or_inplace(all, b);
  st->metadata_blocks += roaring_bitmap_get_cardinality(all);
  // Walk the set in runs of consecutive blocks: one grain range per run.
  roaring_uint32_iterator_t* it = roaring_create_iterator(all);
  Status s;
  while (s && it->has_value) {
    const uint32_t first = it->current_value;
    uint32_t last = first;
    while (roaring_advance_uint32_iterator(it) && it->current_value == last + 1) ++last;
    s = add_block_grains(info, first, uint64_t(last) - first + 1, grain_size, grains);
  }
  roaring_free_uint32_iterator(it);
  roaring_bitmap_free(all);
  return s;
}

Status add_matching_files(const FsIndex& fs, const std::vector<Glob>& globs, uint32_t grain_size,
                          roaring_bitmap_t* grains, GatePolicyStats* st) {
  const FilesystemInfo info = fs.info();
  // Depth-first over the directory tree, carrying paths; a directory is
  // entered once (cycle-safe on hostile indexes), a file is matched once per
  // path and passed once.
  struct Dir {
    uint64_t ino;
    std::string path;
    int depth;
  };
  std::vector<Dir> stack{{info.root_ino, "", 0}};
  std::unordered_set<uint64_t> entered{info.root_ino}, passed;
  std::vector<DirEntry> entries;
  while (!stack.empty()) {
    Dir d = std::move(stack.back());
    stack.pop_back();
    Status s = fs.list(d.ino, &entries);
    if (!s) return s;
    for (const DirEntry& e : entries) {
      std::string path = d.path + "/" + e.name;
      if (e.type == FileType::Directory) {
        if (d.depth < kMaxPathDepth && entered.insert(e.ino).second) stack.push_back({e.ino, std::move(path), d.depth + 1});
        continue;
      }
      if (e.type != FileType::Regular && e.type != FileType::Symlink) continue;
      if (passed.count(e.ino)) continue;
      bool match = false;
      for (const Glob& g : globs) match = match || g.matches(path);
      if (!match) continue;
      passed.insert(e.ino);
      Inode in;
      if (!fs.inode(e.ino, &in)) continue;  // entry without inode: nothing to pass
      ++st->matched_files;
      for (const Extent& x : in.extents) {
        st->data_blocks += x.length;
        if (!(s = add_block_grains(info, x.physical, x.length, grain_size, grains))) return s;
      }
    }
  }
  return Status::ok();
}

}  // namespace

Status add_block_grains(const FilesystemInfo& fs, uint64_t first, uint64_t count, uint32_t grain_size,
                        roaring_bitmap_t* grains) {
  if (count == 0) return Status::ok();
  const uint64_t bs = fs.block_size;
  if (first >= fs.block_count || count > fs.block_count - first)
    return Status::error("blocks " + std::to_string(first) + "+" + std::to_string(count) + " are outside the file system");
  const unsigned __int128 start = (unsigned __int128)fs.partition_offset + (unsigned __int128)first * bs;
  const unsigned __int128 end = start + (unsigned __int128)count * bs;  // exclusive
  const unsigned __int128 g_first = start / grain_size, g_last = (end - 1) / grain_size;
  if (g_last > UINT32_MAX)
    return Status::error("grain number above 2^32 (use a larger grain than " + std::to_string(grain_size) + ")");
  roaring_bitmap_add_range_closed(grains, uint32_t(g_first), uint32_t(g_last));
  return Status::ok();
}

Status build_gate_grains(const Index& index, const GatePolicy& policy, uint32_t grain_size,
                         roaring_bitmap_t* grains, GatePolicyStats* stats) {
  GatePolicyStats local;
  GatePolicyStats* st = stats ? stats : &local;
  *st = {};
  if (grain_size < 512 || (grain_size & (grain_size - 1)))
    return Status::error("grain size " + std::to_string(grain_size) + " is not a power of two >= 512");
  Status s;
  if (policy.kind == GatePolicyKind::PassAll) {
    const uint64_t n = (index.disk_size() + grain_size - 1) / grain_size;
    if (n > (uint64_t(1) << 32)) return Status::error("disk has more than 2^32 grains");
    if (n) roaring_bitmap_add_range_closed(grains, 0, uint32_t(n - 1));
  } else {
    for (const FsIndex& fs : index.filesystems())
      if (!(s = build_fs_gate_grains(fs, policy, grain_size, grains, st))) return s;
  }
  st->grains = roaring_bitmap_get_cardinality(grains);
  return Status::ok();
}

Status build_fs_gate_grains(const FsIndex& fs, const GatePolicy& policy, uint32_t grain_size,
                            roaring_bitmap_t* grains, GatePolicyStats* st) {
  if (policy.kind == GatePolicyKind::PassAll) return Status::ok();
  std::vector<Glob> globs;
  Status s;
  if (policy.kind == GatePolicyKind::MetadataAndGlobs) {
    for (const auto& p : policy.globs) {
      Glob g;
      if (!(s = Glob::compile(p, &g))) return s;
      globs.push_back(std::move(g));
    }
  }
  if (!(s = add_metadata(fs, grain_size, grains, st))) return s;
  if (!globs.empty() && !(s = add_matching_files(fs, globs, grain_size, grains, st))) return s;
  return Status::ok();
}

}  // namespace dsvmi

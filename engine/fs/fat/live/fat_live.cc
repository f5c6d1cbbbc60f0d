// FAT's live driver (infer/fs_driver.h): frames -> shadow (metadata) /
// pending (unowned clusters) / modify (watched files) -> at each consistency
// point a re-read of the volume's metadata, diffed by file id against the
// model and ordered into events. docs/fat.md ("Live inference") explains the
// rules and what a subscriber sees between consistency points.
#include "fat_live.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <unordered_set>

#include "../identity.h"
#include "dsvmi/fat.h"
#include "dsvmi/gate_writer.h"

namespace dsvmi::infer {
namespace {

bool is_metadata(BlockKind k) {
  return k == BlockKind::Superblock || k == BlockKind::MapNode || k == BlockKind::Directory;
}

// What one re-read of the volume found.
class CollectSink : public CrawlSink {
 public:
  void begin_filesystem(const FilesystemInfo&) override {}
  void inode(const Inode& n) override { inodes[n.ino] = n; }
  void dir_entry(uint64_t dir, const DirEntry& e) override { entries[dir].push_back(e); }
  void blocks(BlockKind, uint64_t, uint64_t, uint64_t, uint64_t) override {}
  void problem(const CrawlProblem& p) override {
    problems++;
    last_problem = "fat: " + p.what;
  }
  void end_filesystem() override {}

  std::unordered_map<uint64_t, Inode> inodes;
  std::unordered_map<uint64_t, std::vector<DirEntry>> entries;
  uint64_t problems = 0;
  std::string last_problem;
};

// Attributes whose change the model must take in (extents compared apart;
// access and creation times are not kept by the index: the generation
// stands for the creation time, identity.h).
bool same_attributes(const Inode& a, const Inode& b) {
  return a.type == b.type && a.mode == b.mode && a.size == b.size && a.links == b.links && a.mtime_ns == b.mtime_ns &&
         a.flags == b.flags && a.generation == b.generation;
}

bool same_entries(const std::vector<DirEntry>& a, const std::vector<DirEntry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i].ino != b[i].ino || a[i].name != b[i].name || a[i].type != b[i].type) return false;
  }
  return true;
}

}  // namespace

FatLive::FatLive(EngineContext& ctx, const FsIndex& index, DiskReader& disk, uint32_t partition)
    : ModelDriver(ctx, index, disk, partition, std::max<uint32_t>(index.info().block_size, 1)) {}

Status FatLive::init() {
  if (info_.type != "vfat") return Status::error("inference: file system type '" + info_.type + "' is not FAT");
  if (info_.block_size < 512 || info_.partition_size < 512) return Status::error("inference: FAT volume has no sectors");
  std::vector<unsigned char> boot(512);
  Status s = view_.read(info_.partition_offset, std::as_writable_bytes(std::span(boot)));
  if (!s) return Status::error("inference: fat: cannot read the boot sector: " + s.message());
  std::vector<std::string> warnings;
  if (boot[510] != 0x55 || boot[511] != 0xAA) return Status::error("inference: fat: boot sector has no 0x55AA signature");
  if (!(s = fat::decode_bpb(boot.data(), boot.size(), info_.partition_size, &g_, &warnings)))
    return Status::error("inference: " + s.message());
  if (g_.bytes_per_sector != info_.block_size)
    return Status::error("inference: fat: sector size " + std::to_string(g_.bytes_per_sector) +
                         " differs from the index's " + std::to_string(info_.block_size));
  system_sectors_ = g_.first_data_sector;
  return compile_globs();
}

BlockOwner FatLive::owner_of(uint64_t sector) const {
  if (sector < g_.reserved_sectors) return {BlockKind::Superblock, 0, 0};
  if (sector < system_sectors_) {
    // The FAT copies, then (FAT12/16) the fixed root directory region.
    if (g_.root_dir_sectors != 0 && sector >= g_.root_dir_sector) return {BlockKind::Directory, fat::kRootId, 0};
    return {BlockKind::MapNode, 0, 0};
  }
  BlockOwner o;
  if (!rmap_.owner(sector, &o)) o.kind = BlockKind::Free;
  if (!is_metadata(o.kind) && o.kind != BlockKind::FileData) o.kind = BlockKind::Free;
  return o;
}

Status FatLive::read_back_block(uint64_t b, uint8_t* out) {
  return view_.read_data(b, 0, std::span(out, info_.block_size));
}

// ---------------------------------------------------------------------------
// Policy

Status FatLive::add_gate_grains(Gate& gate, PolicyApplyResult* result) {
  const GatePolicy& p = ctx_.options.policy;
  const uint32_t bs = info_.block_size;
  auto pass = [&](uint64_t first, uint64_t count) -> Status {
    const uint64_t off = info_.partition_offset + first * bs;
    if (count == 0 || off >= gate.disk_size()) return Status::ok();
    return gate.set_bytes(off, std::min(count * bs, gate.disk_size() - off));
  };
  Status s = pass(0, system_sectors_);
  result->metadata_blocks += system_sectors_;
  // One walk of the tree: every directory's clusters, the watched files'.
  struct Dir {
    uint64_t ino;
    std::string path;
    int depth;
  };
  std::vector<Dir> stack{{state_.root(), "", 0}};
  std::unordered_set<uint64_t> entered{state_.root()};
  std::vector<DirEntry> entries;
  while (s && !stack.empty()) {
    Dir d = std::move(stack.back());
    stack.pop_back();
    if (const Inode* n = state_.inode(d.ino)) {
      for (const Extent& x : n->extents) {
        if (!(s = pass(x.physical, x.length))) return s;
        result->metadata_blocks += x.length;
      }
    }
    state_.peek_entries(d.ino, &entries);
    for (const DirEntry& e : entries) {
      std::string path = d.path + "/" + e.name;
      if (path.size() > kMaxPathBytes) continue;
      if (e.type == FileType::Directory) {
        if (d.depth < kMaxPathDepth && entered.insert(e.ino).second) stack.push_back({e.ino, std::move(path), d.depth + 1});
        continue;
      }
      bool data = p.kind == GatePolicyKind::PassAll;
      if (p.kind == GatePolicyKind::MetadataAndGlobs) {
        for (const Glob& g : globs_) data = data || g.matches(path);
      }
      if (!data) continue;
      result->watched_files++;
      if (const Inode* n = state_.inode(e.ino)) {
        for (const Extent& x : n->extents) {
          if (!(s = pass(x.physical, x.length))) return s;
          result->data_blocks += x.length;
        }
      }
    }
  }
  return s;
}

// ---------------------------------------------------------------------------
// Frames

void FatLive::mark_metadata_written(const FrameView& f) {
  if (!metadata_dirty_) first_dirty_ns_ = f.timestamp_ns;
  metadata_dirty_ = true;
  last_metadata_ns_ = f.timestamp_ns;
}

void FatLive::maybe_settle(const FrameView& f) {
  if (!metadata_dirty_) return;
  const uint64_t t = f.timestamp_ns;
  if ((t >= last_metadata_ns_ && t - last_metadata_ns_ >= ctx_.options.quiet_ns) ||
      (t >= first_dirty_ns_ && t - first_dirty_ns_ >= ctx_.options.max_unsettled_ns)) {
    ctx_.stats.quiet_points++;
    consistency_point(last_frame_);
  }
}

void FatLive::write(const FrameView& f, uint64_t disk_offset, uint64_t len, const uint8_t* data, bool discard) {
  ReleaseHeldOnReturn release_held{this};
  maybe_settle(f);
  last_frame_ = f;
  last_frame_.payload = nullptr;
  last_frame_.payload_len = 0;
  const uint32_t bs = info_.block_size;
  const uint64_t rel = disk_offset - info_.partition_offset;
  const uint64_t nsectors = view_.blocks();
  std::vector<uint8_t> zeros;
  struct Run {
    uint64_t ino, file_offset;
    const uint8_t* data;
    uint64_t len;
  };
  std::vector<Run> runs;
  uint64_t done = 0;
  while (done < len) {
    const uint64_t at = rel + done;
    const uint64_t b = at / bs;
    const uint32_t in = static_cast<uint32_t>(at % bs);
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(bs - in, len - done));
    if (b >= nsectors) break;
    const uint8_t* piece;
    if (data != nullptr) {
      piece = data + done;
    } else {
      if (zeros.size() < bs) zeros.assign(bs, 0);
      piece = zeros.data();
    }
    done += n;
    const BlockOwner owner = owner_of(b);
    if (is_metadata(owner.kind)) {
      ctx_.stats.metadata_block_writes++;
      if (discard) {
        view_.drop_shadow(b);  // undefined content: the disk says
      } else {
        (void)view_.shadow_write(b, in, piece, n);
      }
      mark_metadata_written(f);
      continue;
    }
    if (owner.kind == BlockKind::FileData) {
      if (discard || !watched(owner.ino)) continue;
      // Bytes past the file's size (as of the last consistency point) are
      // not its content yet: an append, or the last cluster's slack. They
      // wait with the pending data and count once the size covers them.
      const Inode* file = state_.inode(owner.ino);
      const uint64_t at_file = owner.logical * bs + in, size = file ? file->size : 0;
      const uint32_t inside = at_file >= size ? 0 : static_cast<uint32_t>(std::min<uint64_t>(n, size - at_file));
      if (inside < n) {
        PendingPiece p;
        p.offset = in + inside;
        p.bytes.assign(piece + inside, piece + n);
        p.time_ns = f.timestamp_ns;
        p.frame_seq = f.seq;
        view_.add_pending(b, std::move(p));
      }
      if (inside == 0) continue;
      if (!runs.empty() && runs.back().ino == owner.ino && runs.back().file_offset + runs.back().len == at_file &&
          (data == nullptr || runs.back().data + runs.back().len == piece)) {
        runs.back().len += inside;
      } else {
        runs.push_back(Run{owner.ino, at_file, data ? piece : nullptr, inside});
      }
      continue;
    }
    // Free: data for a cluster the FAT may give an owner at the next
    // consistency point (or a new directory's first bytes).
    if (discard) {
      view_.drop_pending(b);
      continue;
    }
    PendingPiece p;
    p.offset = in;
    p.bytes.assign(piece, piece + n);
    p.time_ns = f.timestamp_ns;
    p.frame_seq = f.seq;
    view_.add_pending(b, std::move(p));
  }
  for (const Run& r : runs) {
    if (r.data != nullptr) {
      emit_modify(f, r.ino, r.file_offset, r.data, r.len);
    } else {
      std::vector<uint8_t> z(r.len, 0);
      emit_modify(f, r.ino, r.file_offset, z.data(), r.len);
    }
  }
  bound_pending();
}

void FatLive::flush(const FrameView& f) {
  ReleaseHeldOnReturn release_held{this};
  last_frame_ = f;
  consistency_point(f);
}

uint64_t FatLive::idle(uint64_t now_ns) {
  if (!metadata_dirty_) return UINT64_MAX;
  const uint64_t due = std::min(last_metadata_ns_ + ctx_.options.quiet_ns, first_dirty_ns_ + ctx_.options.max_unsettled_ns);
  if (now_ns < due) return due;
  ReleaseHeldOnReturn release_held{this};
  ctx_.stats.quiet_points++;
  consistency_point(last_frame_);
  return UINT64_MAX;
}

void FatLive::lost(const FrameView& f, uint64_t disk_offset, uint64_t len) {
  ReleaseHeldOnReturn release_held{this};
  last_frame_ = f;
  const uint32_t bs = info_.block_size;
  const uint64_t first = (disk_offset - info_.partition_offset) / bs;
  const uint64_t last = len == 0 ? view_.blocks()
                                 : std::min<uint64_t>((disk_offset - info_.partition_offset + len + bs - 1) / bs,
                                                      view_.blocks());
  view_.drop_range(len == 0 ? 0 : first, last);  // the disk is the truth there again
  hashes_.lost();
  metadata_dirty_ = true;
  consistency_point(f);
  Event e = base_event(f, EventKind::Overflow, 0);
  e.offset = disk_offset;
  e.length = len;
  e.lost_frames = f.lost_frames;
  out_.emit(std::move(e));
}

void FatLive::finish() {
  ReleaseHeldOnReturn release_held{this};
  if (metadata_dirty_) consistency_point(last_frame_);
  for (auto& [b, pieces] : view_.pending()) ctx_.stats.pending_expired += pieces.size();
  while (!view_.pending().empty()) view_.drop_pending(view_.pending().begin()->first);
}

// ---------------------------------------------------------------------------
// Consistency points

void FatLive::consistency_point(const FrameView& f) {
  ctx_.stats.consistency_points++;
  if (!metadata_dirty_) {
    settle_pending(f);
    settle_hashes(f);
    return;
  }
  metadata_dirty_ = false;

  // The volume as the view shows it now, read with the crawler's code.
  CollectSink now;
  FatCrawlStats cs;
  Status s = crawl_fat(view_, info_.partition_offset, info_.partition_size, now, FatCrawlOptions{}, &cs);
  ctx_.stats.metadata_rereads++;
  ctx_.stats.inodes_decoded += now.inodes.size();
  ctx_.stats.disk_block_reads = view_.disk_block_reads;
  if (now.problems != 0) {
    ctx_.stats.decode_problems += now.problems;
    ctx_.stats.last_decode_problem = now.last_problem;
  }
  if (!s || now.inodes.count(info_.root_ino) == 0) {
    // Unreadable as a whole (e.g. a boot sector being rewritten): the model
    // stays; the next metadata write tries again.
    ctx_.stats.decode_problems++;
    ctx_.stats.last_decode_problem = s ? "fat: no root directory" : s.message();
    settle_pending(f);
    return;
  }
  // Entries by name, one per name, each naming a file the re-read found.
  for (auto& [dir, list] : now.entries) {
    std::stable_sort(list.begin(), list.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    std::vector<DirEntry> kept;
    for (DirEntry& e : list) {
      if ((!kept.empty() && kept.back().name == e.name) || now.inodes.count(e.ino) == 0 || e.ino == info_.root_ino) continue;
      kept.push_back(std::move(e));
    }
    list.swap(kept);
  }

  // Every file the model has (reachable from the root) and every file found.
  std::set<uint64_t> ids;
  {
    std::vector<uint64_t> queue{state_.root()};
    std::unordered_set<uint64_t> seen{state_.root()};
    std::vector<DirEntry> entries;
    for (size_t q = 0; q < queue.size(); q++) {
      ids.insert(queue[q]);
      const Inode* n = state_.inode(queue[q]);
      if (n == nullptr || n->type != FileType::Directory) continue;
      state_.peek_entries(queue[q], &entries);
      for (const DirEntry& e : entries) {
        if (seen.insert(e.ino).second) queue.push_back(e.ino);
      }
    }
  }
  for (const auto& [id, n] : now.inodes) ids.insert(id);

  // Where each file found is named (FAT: one name per file).
  std::unordered_map<uint64_t, std::pair<uint64_t, const std::string*>> new_link;
  for (const auto& [dir, list] : now.entries) {
    for (const DirEntry& e : list) new_link.emplace(e.ino, std::make_pair(dir, &e.name));
  }
  auto same_name = [&](uint64_t id) {
    auto it = new_link.find(id);
    if (it == new_link.end()) return false;
    const std::vector<Link>& links = state_.links(id);
    return !links.empty() && links[0].parent == it->second.first && links[0].name == *it->second.second;
  };

  Changes changes;
  const std::vector<DirEntry> no_entries;
  std::vector<DirEntry> old_list;
  for (uint64_t id : ids) {
    Change c;
    if (const Inode* o = state_.inode(id)) c.old = *o;
    auto it = now.inodes.find(id);
    if (it != now.inodes.end()) c.now = &it->second;
    if (!c.old && !c.now) continue;
    if (c.old && c.now && same_attributes(*c.old, *c.now) && same_extents(c.old->extents, c.now->extents)) {
      if (c.now->type != FileType::Directory) continue;
      state_.peek_entries(id, &old_list);
      auto ne = now.entries.find(id);
      if (same_entries(old_list, ne == now.entries.end() ? no_entries : ne->second)) continue;
    }
    // The same id for another file: a cluster (or an empty file's entry
    // slot) freed and taken by a new file within one batch. The generation
    // is the entry's creation time (identity.h); a new file has its own.
    // Under the same name it is the same file rewritten (a program that
    // deletes and creates it again, as mcopy -o does): docs/fat.md.
    c.reused = c.old && c.now &&
               (c.old->type != c.now->type ||
                (state_.generation_known(id) && c.old->generation != c.now->generation && !same_name(id)));
    note_change(id, std::move(c), &changes);
  }
  // The directories holding a changed file, before and after: the plan
  // orders names from their entries. Needed when a file's id is taken by a
  // new file under the same name (a reuse), which leaves the entries as
  // they were.
  {
    std::vector<uint64_t> parents;
    for (const auto& [id, c] : changes) {
      if (!c.reused) continue;
      uint64_t p = 0;
      if (state_.parent(id, &p)) parents.push_back(p);
      if (auto it = new_link.find(id); it != new_link.end()) parents.push_back(it->second.first);
    }
    for (uint64_t p : parents) {
      if (changes.count(p)) continue;
      Change c;
      const Inode* o = state_.inode(p);
      auto it = now.inodes.find(p);
      if (o == nullptr || it == now.inodes.end()) continue;
      c.old = *o;
      c.now = &it->second;
      changes.emplace(p, std::move(c));
    }
  }

  apply_names(f, changes, now.entries);
  emit_attribute_events(f, changes);

  // Cluster ownership: releases first (clusters move between files within a
  // batch), then the new owners.
  std::vector<std::pair<uint64_t, uint64_t>> released;
  std::vector<uint64_t> reassigned;
  for (auto& [id, c] : changes) {
    const std::vector<Extent> none;
    const std::vector<Extent>& oe = c.old ? c.old->extents : none;
    const std::vector<Extent>& ne = c.now ? c.now->extents : none;
    if (same_extents(oe, ne) && !c.reused && c.old.has_value() == (c.now != nullptr)) continue;
    reassigned.push_back(id);
    for (const Extent& x : oe) {
      rmap_.release(x.physical, x.length);
      released.push_back({x.physical, x.length});
    }
  }
  for (uint64_t id : reassigned) {
    const Change& c = changes[id];
    if (!c.now) continue;
    const bool dir = c.now->type == FileType::Directory;
    const bool pass = dir || watched(id);
    for (const Extent& x : c.now->extents) {
      rmap_.assign(x.physical, x.length, BlockOwner{dir ? BlockKind::Directory : BlockKind::FileData, id, x.logical});
      gate_blocks(x.physical, x.length, pass);
    }
  }
  read_back_new_data(f, reassigned, changes);
  for (auto [first, count] : released) {
    for (uint64_t b = first; b < first + count && b < view_.blocks(); b++) {
      const BlockOwner o = owner_of(b);
      if (!is_metadata(o.kind)) view_.drop_shadow(b);
      if (o.kind == BlockKind::Free) gate_blocks(b, 1, false);
    }
  }
  free_deleted(changes);
  settle_pending(f);
  settle_hashes(f);
  publish_gate();
}

// Pending data whose sector now has an owner is attributed (a watched file's
// data: modify; a directory's: kept as metadata); what stays unowned past
// the TTL expires.
void FatLive::settle_pending(const FrameView& f) {
  auto& pending = view_.pending();
  const uint32_t bs = info_.block_size;
  for (auto it = pending.begin(); it != pending.end();) {
    const uint64_t b = it->first;
    const BlockOwner o = owner_of(b);
    if (o.kind == BlockKind::Free) {
      auto& list = it->second;
      for (auto p = list.begin(); p != list.end();) {
        if (f.timestamp_ns > p->time_ns && f.timestamp_ns - p->time_ns > ctx_.options.pending_ttl_ns) {
          ctx_.stats.pending_expired++;
          view_.account_pending_removed(p->bytes.size() + sizeof(PendingPiece));
          p = list.erase(p);
        } else {
          ++p;
        }
      }
      it = list.empty() ? pending.erase(it) : std::next(it);
      continue;
    }
    std::vector<PendingPiece> list = std::move(it->second);
    for (const PendingPiece& p : list) view_.account_pending_removed(p.bytes.size() + sizeof(PendingPiece));
    it = pending.erase(it);
    // A file's data as of this point: the slack of its last cluster is not.
    const Inode* file = o.kind == BlockKind::FileData ? state_.inode(o.ino) : nullptr;
    for (const PendingPiece& p : list) {
      if (is_metadata(o.kind)) {
        (void)view_.shadow_write(b, p.offset, p.bytes.data(), static_cast<uint32_t>(p.bytes.size()));
      } else if (file != nullptr) {
        const uint64_t at = o.logical * bs + p.offset;
        if (at < file->size) emit_modify(f, o.ino, at, p.bytes.data(), std::min<uint64_t>(p.bytes.size(), file->size - at));
      }
    }
  }
  view_.tidy_pending_order();
  ctx_.stats.pending_bytes = view_.pending_bytes();
  ctx_.stats.pending_blocks = pending.size();
  ctx_.stats.shadow_blocks = view_.shadow_blocks();
  ctx_.stats.disk_block_reads = view_.disk_block_reads;
}

}  // namespace dsvmi::infer

// ext4's live driver (infer/fs_driver.h): frames -> shadow/pending/journal ->
// at each consistency point, decode what changed, diff against the model, order the
// differences into events. docs/inference.md explains the design.
#include "ext4_live.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_set>

#include "../ext4_format.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/grain.h"

namespace dsvmi::infer {
namespace {

bool is_metadata(BlockKind k) {
  switch (k) {
    case BlockKind::Superblock:
    case BlockKind::GroupDescriptors:
    case BlockKind::BlockBitmap:
    case BlockKind::InodeBitmap:
    case BlockKind::InodeTable:
    case BlockKind::Directory:
    case BlockKind::MapNode:
    case BlockKind::Xattr:
      return true;
    default:
      return false;
  }
}

}  // namespace

Ext4Live::Ext4Live(EngineContext& ctx, const FsIndex& index, DiskReader& disk, uint32_t partition)
    : ModelDriver(ctx, index, disk, partition, index.info().block_size),
      index_(index),
      journal_(ctx.options.journal_cache_blocks) {}

Status Ext4Live::init() {
  if (info_.type != "ext2" && info_.type != "ext3" && info_.type != "ext4") {
    return Status::error("inference: file system type '" + info_.type + "' is not supported");
  }
  if (info_.block_size == 0 || info_.partition_size / info_.block_size == 0) {
    return Status::error("inference: file system has no blocks");
  }
  decoder_ = std::make_unique<ext4::Crawler>(view_, info_.partition_offset, info_.partition_size, decoded_,
                                             crawl_options_, crawl_stats_);
  Status s = decoder_->open();
  if (!s) return Status::error("inference: " + s.message());
  const ext4::Superblock& sb = decoder_->sb_;
  if (sb.block_size != info_.block_size) return Status::error("inference: block size differs from the index");
  for (uint64_t g = 0; g < decoder_->groups_.size(); g++) {
    if (decoder_->groups_[g].valid) itables_.push_back({decoder_->groups_[g].inode_table, g});
  }
  std::sort(itables_.begin(), itables_.end());
  if (!(s = compile_globs())) return s;
  if (info_.journal_ino != 0) {
    if (const Inode* j = state_.inode(info_.journal_ino)) journal_extents_ = j->extents;
    if (!journal_extents_.empty() && journal_extents_[0].logical == 0) {
      std::vector<uint8_t> block(info_.block_size);
      s = view_.get_block(journal_extents_[0].physical, block.data());
      JournalGeometry g;
      std::string why;
      if (s && decode_journal_superblock(block.data(), block.size(), &g, &why) && g.block_size == info_.block_size) {
        journal_.set_geometry(g);
      }
    }
  }
  return Status::ok();
}

BlockKind Ext4Live::data_kind(const Inode& n) const {
  if (n.ino == info_.journal_ino && n.ino != 0) return BlockKind::Journal;
  if (n.type == FileType::Directory) return BlockKind::Directory;
  return BlockKind::FileData;
}

Status Ext4Live::readable(const Inode& n) {
  constexpr uint32_t kInlineDataFl = 0x10000000;  // ext4 EXT4_INLINE_DATA_FL
  if (n.flags & kInlineDataFl) return Status::error("inline data is not read for hashes");
  return Status::ok();
}

Status Ext4Live::read_back_block(uint64_t b, uint8_t* out) { return view_.get_block(b, out, /*fresh=*/true); }

// ---------------------------------------------------------------------------
// Policy changes

Status Ext4Live::add_gate_grains(Gate& gate, PolicyApplyResult* result) {
  const GatePolicy& p = ctx_.options.policy;
  // Watched files under globs: one walk of the current tree (every name of
  // every file, like watched()), without materializing directories.
  std::unordered_set<uint64_t> matched;
  if (p.kind == GatePolicyKind::MetadataAndGlobs && !globs_.empty()) {
    struct Dir {
      uint64_t ino;
      std::string path;
      int depth;
    };
    std::vector<Dir> stack{{state_.root(), "", 0}};
    std::unordered_set<uint64_t> entered{state_.root()};
    std::vector<DirEntry> entries;
    while (!stack.empty()) {
      Dir d = std::move(stack.back());
      stack.pop_back();
      state_.peek_entries(d.ino, &entries);
      for (const DirEntry& e : entries) {
        std::string path = d.path + "/" + e.name;
        if (path.size() > kMaxPathBytes) continue;
        if (e.type == FileType::Directory) {
          if (d.depth < kMaxPathDepth && entered.insert(e.ino).second) stack.push_back({e.ino, std::move(path), d.depth + 1});
          continue;
        }
        if (e.type != FileType::Regular || matched.count(e.ino)) continue;
        for (const Glob& g : globs_) {
          if (g.matches(path)) {
            matched.insert(e.ino);
            break;
          }
        }
      }
    }
    result->watched_files += matched.size();
  }
  auto data_passes = [&](uint64_t ino) {
    if (p.kind == GatePolicyKind::PassAll) return true;
    if (p.kind == GatePolicyKind::MetadataOnly) return false;
    return matched.count(ino) != 0;
  };
  // Every block of the file system by its current owner; consecutive
  // passing blocks become one range.
  const uint64_t nblocks = view_.blocks();
  const uint32_t bs = info_.block_size;
  uint64_t run_first = 0, run_len = 0;
  auto close_run = [&]() -> Status {
    if (run_len == 0) return Status::ok();
    uint64_t off = info_.partition_offset + run_first * bs, len = run_len * bs;
    run_len = 0;
    if (off >= gate.disk_size()) return Status::ok();
    len = std::min(len, gate.disk_size() - off);
    return gate.set_bytes(off, len);
  };
  for (uint64_t b = 0; b < nblocks; b++) {
    BlockOwner o;
    bool pass = false;
    if (rmap_.owner(b, &o)) {
      if (is_metadata(o.kind) || o.kind == BlockKind::Journal) {
        pass = true;
        result->metadata_blocks++;
      } else if (o.kind == BlockKind::FileData && data_passes(o.ino)) {
        pass = true;
        result->data_blocks++;
      }
    }
    if (pass) {
      if (run_len == 0) run_first = b;
      run_len++;
    } else if (Status s = close_run(); !s) {
      return s;
    }
  }
  return close_run();
}

// ---------------------------------------------------------------------------
// Frames

void Ext4Live::write(const FrameView& f, uint64_t disk_offset, uint64_t len, const uint8_t* data, bool discard) {
  ReleaseHeldOnReturn release_held{this};
  const uint32_t bs = info_.block_size;
  const uint64_t rel = disk_offset - info_.partition_offset;
  const uint64_t nblocks = view_.blocks();
  std::vector<uint8_t> zeros;
  std::vector<uint8_t> block(bs);
  // Modify runs for this frame: (ino, file offset, data pointer, length).
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
    if (b >= nblocks) break;
    const uint8_t* piece;
    if (data != nullptr) {
      piece = data + done;
    } else {
      if (zeros.size() < n) zeros.assign(bs, 0);
      piece = zeros.data();
    }
    done += n;
    BlockOwner owner;
    if (!rmap_.owner(b, &owner)) continue;
    if (owner.kind == BlockKind::Journal) {
      if (discard) continue;
      if (in == 0 && n == bs) {
        journal_block(f, owner.logical, piece);
      } else if (view_.get_block(b, block.data())) {
        std::memcpy(block.data() + in, piece, n);
        journal_block(f, owner.logical, block.data());
      }
      continue;
    }
    if (is_metadata(owner.kind)) {
      ctx_.stats.metadata_block_writes++;
      if (view_.shadow_write(b, in, piece, n)) dirty_.insert(b);
      continue;
    }
    if (owner.kind == BlockKind::FileData) {
      if (view_.shadow(b)) (void)view_.shadow_write(b, in, piece, n);
      if (discard) continue;
      if (!runs.empty() && runs.back().ino == owner.ino &&
          runs.back().file_offset + runs.back().len == owner.logical * bs + in &&
          (data == nullptr || runs.back().data + runs.back().len == piece)) {
        runs.back().len += n;
      } else {
        runs.push_back(Run{owner.ino, owner.logical * bs + in, data ? piece : nullptr, n});
      }
      continue;
    }
    if (owner.kind == BlockKind::Free) {
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
  }
  for (const Run& r : runs) {
    if (r.data != nullptr) {
      emit_modify(f, r.ino, r.file_offset, r.data, r.len);
    } else {
      std::vector<uint8_t> z(r.len, 0);
      emit_modify(f, r.ino, r.file_offset, z.data(), r.len);
    }
  }
  // Bound the pending store: oldest pieces go first.
  bound_pending();
}

void Ext4Live::journal_block(const FrameView& f, uint64_t position, const uint8_t* block) {
  if (position > UINT32_MAX) return;
  uint32_t seq = 0;
  if (journal_.block_written(static_cast<uint32_t>(position), block, &seq)) {
    apply_transaction(seq);
    consistency_point(f);
  }
}

void Ext4Live::apply_transaction(uint32_t seq) {
  const uint32_t bs = info_.block_size;
  std::vector<JournalTag> tags = journal_.take_transaction(seq);
  ctx_.stats.journal_commits++;
  std::vector<uint8_t> image(bs);
  for (const JournalTag& t : tags) {
    if (t.target >= view_.blocks()) {
      ctx_.stats.journal_bad_blocks++;
      continue;
    }
    if (const std::vector<uint8_t>* c = journal_.cached_block(t.position)) {
      std::memcpy(image.data(), c->data(), bs);
    } else {
      // Evicted or lost: the journal on the disk still holds it.
      uint64_t phys = 0;
      bool found = false;
      for (const Extent& x : journal_extents_) {
        if (t.position >= x.logical && t.position < x.logical + x.length) {
          phys = x.physical + (t.position - x.logical);
          found = true;
          break;
        }
      }
      if (!found || !view_.get_block(phys, image.data())) {
        ctx_.stats.journal_bad_blocks++;
        continue;
      }
      ctx_.stats.journal_blocks_read_back++;
    }
    if (t.escaped) {
      image[0] = 0xC0;
      image[1] = 0x3B;
      image[2] = 0x39;
      image[3] = 0x98;
    }
    view_.shadow_set(t.target, image.data());
    view_.drop_pending(t.target);
    dirty_.insert(t.target);
    ctx_.stats.journal_blocks_applied++;
  }
}

void Ext4Live::flush(const FrameView& f) {
  ReleaseHeldOnReturn release_held{this};
  consistency_point(f);
}

void Ext4Live::lost(const FrameView& f, uint64_t disk_offset, uint64_t len) {
  ReleaseHeldOnReturn release_held{this};
  const uint32_t bs = info_.block_size;
  uint64_t first = (disk_offset - info_.partition_offset) / bs;
  uint64_t last = std::min<uint64_t>((disk_offset - info_.partition_offset + len + bs - 1) / bs, view_.blocks());
  std::vector<uint8_t> block(bs);
  std::vector<std::pair<uint64_t, uint64_t>> journal_blocks;  // (position, physical)
  // Bounded by the file system's block count; a hostile producer's huge range
  // costs one pass of reverse-map lookups.
  for (uint64_t b = first; b < last; b++) {
    BlockOwner o;
    if (!rmap_.owner(b, &o)) continue;
    if (is_metadata(o.kind)) {
      view_.drop_shadow(b);  // re-read from the disk
      dirty_.insert(b);
    } else if (o.kind == BlockKind::Journal) {
      journal_blocks.push_back({o.logical, b});
    } else if (o.kind == BlockKind::Free) {
      view_.drop_pending(b);
    }
  }
  hashes_.lost();  // what the lost frames wrote is read from the disk
  std::sort(journal_blocks.begin(), journal_blocks.end());
  for (auto [pos, phys] : journal_blocks) {
    if (view_.get_block(phys, block.data())) journal_block(f, pos, block.data());
  }
  consistency_point(f);
  Event e = base_event(f, EventKind::Overflow, 0);
  e.offset = disk_offset;
  e.length = len;
  e.lost_frames = f.lost_frames;
  out_.emit(std::move(e));
}

void Ext4Live::finish() {
  ReleaseHeldOnReturn release_held{this};
  for (auto& [b, pieces] : view_.pending()) ctx_.stats.pending_expired += pieces.size();
  while (!view_.pending().empty()) view_.drop_pending(view_.pending().begin()->first);
}

// ---------------------------------------------------------------------------
// Decoding

void Ext4Live::inodes_of_table_block(uint64_t block, std::set<uint64_t>* out) {
  const ext4::Superblock& sb = decoder_->sb_;
  auto it = std::upper_bound(itables_.begin(), itables_.end(), std::make_pair(block, UINT64_MAX));
  if (it == itables_.begin()) return;
  --it;
  const uint64_t index = block - it->first;
  if (index >= sb.inode_table_blocks()) return;
  const uint64_t per_block = sb.block_size / sb.inode_size;
  const uint64_t first = it->second * uint64_t{sb.inodes_per_group} + index * per_block + 1;
  for (uint64_t i = 0; i < per_block; i++) {
    uint64_t ino = first + i;
    if (ino > sb.inodes_count) break;
    if (index * per_block + i >= sb.inodes_per_group) break;
    if (ino == ext4::kRootIno || ino >= sb.first_ino) out->insert(ino);
  }
}

Status Ext4Live::read_inode_raw(uint64_t ino, std::vector<uint8_t>* raw) {
  const ext4::Superblock& sb = decoder_->sb_;
  if (ino == 0 || ino > sb.inodes_count) return Status::error("inode number out of range");
  const uint64_t g = (ino - 1) / sb.inodes_per_group, idx = (ino - 1) % sb.inodes_per_group;
  if (g >= decoder_->groups_.size() || !decoder_->groups_[g].valid) return Status::error("group invalid");
  const uint64_t byte = idx * sb.inode_size;
  const uint64_t block = decoder_->groups_[g].inode_table + byte / sb.block_size;
  std::vector<uint8_t> b(sb.block_size);
  Status s = view_.get_block(block, b.data());
  if (!s) return s;
  raw->assign(b.begin() + byte % sb.block_size, b.begin() + byte % sb.block_size + sb.inode_size);
  return Status::ok();
}

void Ext4Live::decode(const std::set<uint64_t>& inos) {
  decoded_.clear();
  decoder_->reset_budgets();
  const uint64_t before = decoded_.problems;
  std::vector<uint8_t> raw;
  for (uint64_t ino : inos) {
    if (!read_inode_raw(ino, &raw)) continue;
    const uint32_t mode = ext4::le16(raw.data());
    const uint32_t links = ext4::le16(raw.data() + 0x1A);
    const uint32_t dtime = ext4::le32(raw.data() + 0x14);
    if (mode == 0 || (links == 0 && dtime > decoder_->sb_.inodes_count)) continue;  // free
    decoder_->process_inode(ino, raw.data());
    ctx_.stats.inodes_decoded++;
  }
  decoder_->flush_directories();
  decoder_->runs_.flush();
  ctx_.stats.decode_problems += decoded_.problems - before;
  if (decoded_.problems != before) ctx_.stats.last_decode_problem = decoded_.last_problem;
}

// ---------------------------------------------------------------------------
// Consistency points

void Ext4Live::consistency_point(const FrameView& f) {
  ctx_.stats.consistency_points++;
  if (dirty_.empty()) {
    settle_pending(f);
    settle_hashes(f);
    return;
  }
  std::set<uint64_t> inos;
  for (uint64_t b : dirty_) {
    BlockOwner o;
    if (!rmap_.owner(b, &o)) continue;
    if (o.kind == BlockKind::InodeTable) {
      inodes_of_table_block(b, &inos);
    } else if ((o.kind == BlockKind::Directory || o.kind == BlockKind::MapNode || o.kind == BlockKind::Xattr) &&
               o.ino != 0) {
      if (o.ino == ext4::kRootIno || o.ino >= decoder_->sb_.first_ino) inos.insert(o.ino);
    }
  }
  dirty_.clear();
  decode(inos);

  // Old and new state of every decoded inode.
  Changes changes;
  for (uint64_t ino : inos) {
    Change c;
    if (const Inode* o = state_.inode(ino)) c.old = *o;
    auto it = decoded_.inodes.find(ino);
    if (it != decoded_.inodes.end()) c.now = &it->second;
    if (!c.old && !c.now) continue;
    // Reused: freed and allocated again since the model last saw it. The
    // generation tells when the model's copy has a real one: decoded, or from
    // an index that keeps generations (docs/index.md).
    c.reused = c.old && c.now &&
               ((state_.generation_known(ino) && c.old->generation != c.now->generation) || c.old->type != c.now->type);
    note_change(ino, std::move(c), &changes);
  }
  apply_names(f, changes, decoded_.entries);
  emit_attribute_events(f, changes);

  // Block ownership: releases first (blocks may move between inodes within
  // one batch), then the new owners.
  std::vector<std::pair<uint64_t, uint64_t>> released;
  std::vector<uint64_t> reassigned;
  for (auto& [ino, c] : changes) {
    const std::vector<Extent> none;
    const std::vector<Extent>& oe = c.old ? c.old->extents : none;
    const std::vector<Extent>& ne = c.now ? c.now->extents : none;
    auto mn = decoded_.meta.find(ino);
    auto old_mn = map_nodes_.find(ino);
    bool maps_changed = (mn != decoded_.meta.end()) != (old_mn != map_nodes_.end());
    if (!maps_changed && mn != decoded_.meta.end()) {
      const auto& a = mn->second;
      const auto& b = old_mn->second;
      maps_changed = a.size() != b.size();
      for (size_t k = 0; !maps_changed && k < a.size(); k++) {
        maps_changed = a[k].first != b[k].first || a[k].count != b[k].count || a[k].kind != b[k].kind;
      }
    }
    const bool ext_changed = !same_extents(oe, ne) || c.reused || (c.old.has_value() != (c.now != nullptr));
    if (!ext_changed && !maps_changed) continue;
    reassigned.push_back(ino);
    if (ext_changed) {
      for (const Extent& x : oe) {
        rmap_.release(x.physical, x.length);
        released.push_back({x.physical, x.length});
      }
    }
    if (old_mn != map_nodes_.end()) {
      for (const auto& r : old_mn->second) {
        rmap_.release(r.first, r.count);
        released.push_back({r.first, r.count});
      }
      map_nodes_.erase(old_mn);
    }
  }
  for (uint64_t ino : reassigned) {
    auto& c = changes[ino];
    if (c.now) {
      const BlockKind k = data_kind(*c.now);
      const bool pass = k != BlockKind::FileData || watched(ino);
      for (const Extent& x : c.now->extents) {
        rmap_.assign(x.physical, x.length, BlockOwner{k, ino, x.logical});
        gate_blocks(x.physical, x.length, pass);
      }
      auto mn = decoded_.meta.find(ino);
      if (mn != decoded_.meta.end()) {
        for (const auto& r : mn->second) {
          rmap_.assign(r.first, r.count, BlockOwner{r.kind, ino, 0});
          gate_blocks(r.first, r.count, true);
        }
        map_nodes_[ino] = mn->second;
      }
    }
  }
  // Holes punched inside a watched file (blocks unmapped below its size)
  // read as zeroes from now on: say so with a modify of zeroes.
  for (uint64_t ino : reassigned) {
    auto& c = changes[ino];
    if (!c.old || !c.now || c.reused || c.now->type != FileType::Regular || !watched(ino)) continue;
    const uint32_t bs = info_.block_size;
    const uint64_t limit = (c.now->size + bs - 1) / bs;
    auto mapped = [&](uint64_t logical) {
      for (const Extent& y : c.now->extents) {
        if (logical >= y.logical && logical < y.logical + y.length) return true;
      }
      return false;
    };
    std::vector<uint8_t> zeros;
    for (const Extent& x : c.old->extents) {
      for (uint64_t k = 0; k < x.length && x.logical + k < limit; k++) {
        const uint64_t logical = x.logical + k;
        if (x.unwritten || mapped(logical)) continue;
        const uint64_t len = std::min<uint64_t>(bs, c.now->size - logical * bs);
        zeros.assign(len, 0);
        emit_modify(f, ino, logical * bs, zeros.data(), len);
      }
    }
  }
  read_back_new_data(f, reassigned, changes);
  for (auto [first, count] : released) {
    for (uint64_t b = first; b < first + count && b < view_.blocks(); b++) {
      BlockOwner o;
      if (!rmap_.owner(b, &o)) continue;
      if (!is_metadata(o.kind)) view_.drop_shadow(b);
      if (o.kind == BlockKind::Free) gate_blocks(b, 1, false);
    }
  }
  free_deleted(changes);
  settle_pending(f);
  settle_hashes(f);
  publish_gate();
}

// Pending data whose block now has an owner is attributed; what stays
// unowned past the TTL expires.
void Ext4Live::settle_pending(const FrameView& f) {
  auto& pending = view_.pending();
  const uint32_t bs = info_.block_size;
  for (auto it = pending.begin(); it != pending.end();) {
    const uint64_t b = it->first;
    BlockOwner o;
    if (!rmap_.owner(b, &o)) o.kind = BlockKind::Reserved;
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
      if (list.empty()) {
        it = pending.erase(it);
      } else {
        ++it;
      }
      continue;
    }
    std::vector<PendingPiece> list = std::move(it->second);
    for (const PendingPiece& p : list) view_.account_pending_removed(p.bytes.size() + sizeof(PendingPiece));
    it = pending.erase(it);
    if (o.kind == BlockKind::FileData) {
      // A slow symlink's target block is read again whenever its inode is
      // decoded: keep it like metadata.
      const Inode* owner = state_.inode(o.ino);
      const bool keep = owner != nullptr && owner->type == FileType::Symlink;
      for (const PendingPiece& p : list) {
        if (keep || view_.shadow(b)) (void)view_.shadow_write(b, p.offset, p.bytes.data(), static_cast<uint32_t>(p.bytes.size()));
        emit_modify(f, o.ino, o.logical * bs + p.offset, p.bytes.data(), p.bytes.size());
      }
    } else if (is_metadata(o.kind)) {
      for (const PendingPiece& p : list) {
        (void)view_.shadow_write(b, p.offset, p.bytes.data(), static_cast<uint32_t>(p.bytes.size()));
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

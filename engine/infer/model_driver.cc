// The shared half of the model-keeping live drivers (model_driver.h).
#include "model_driver.h"

#include <algorithm>
#include <set>

#include "change_plan.h"
#include "dsvmi/gate_writer.h"

namespace dsvmi::infer {

ModelDriver::ModelDriver(EngineContext& ctx, const FsIndex& index, DiskReader& disk, uint32_t partition,
                         uint32_t block_size)
    : ctx_(ctx),
      info_(index.info()),
      partition_(partition),
      view_(disk, info_.partition_offset, info_.partition_size, block_size),
      rmap_(index),
      state_(index, info_.root_ino),
      out_(ctx),
      hashes_(ctx) {}

Status ModelDriver::compile_globs() {
  for (const std::string& p : ctx_.options.policy.globs) {
    Glob g;
    Status s = Glob::compile(p, &g);
    if (!s) return s;
    globs_.push_back(std::move(g));
  }
  for (const std::string& p : ctx_.options.hash_globs) {
    Glob g;
    Status s = Glob::compile(p, &g);
    if (!s) return Status::error("inference: hash glob: " + s.message());
    hash_globs_.push_back(std::move(g));
  }
  return Status::ok();
}

void ModelDriver::set_globs(std::vector<Glob> globs) {
  globs_ = std::move(globs);
  watched_cache_.clear();
}

bool ModelDriver::watched(uint64_t ino) {
  const GatePolicy& p = ctx_.options.policy;
  if (p.kind == GatePolicyKind::MetadataOnly) return false;
  const Inode* n = state_.inode(ino);
  if (n == nullptr || n->type != FileType::Regular) return false;
  if (p.kind == GatePolicyKind::PassAll) return true;
  auto it = watched_cache_.find(ino);
  if (it != watched_cache_.end()) return it->second;
  bool match = false;
  for (const Link& l : std::vector<Link>(state_.links(ino))) {
    std::string path = name_path(l.parent, l.name);
    for (const Glob& g : globs_) match = match || g.matches(path);
  }
  watched_cache_[ino] = match;
  return match;
}

bool ModelDriver::hashed_file(uint64_t ino, uint64_t* size, std::string* path) {
  if (hash_globs_.empty() || !watched(ino)) return false;
  const Inode* n = state_.inode(ino);
  if (n == nullptr) return false;
  for (const Link& l : std::vector<Link>(state_.links(ino))) {
    std::string p = name_path(l.parent, l.name);
    for (const Glob& g : hash_globs_) {
      if (g.matches(p)) {
        *size = n->size;
        *path = std::move(p);
        return true;
      }
    }
  }
  return false;
}

Status ModelDriver::read_file(uint64_t ino, uint64_t offset, std::span<uint8_t> out) {
  const Inode* n = state_.inode(ino);
  const std::string what = "hash: file " + std::to_string(ino);
  if (n == nullptr) return Status::error(what + " is gone");
  if (Status s = readable(*n); !s) return Status::error(what + ": " + s.message());
  if (offset > n->size || out.size() > n->size - offset) return Status::error("hash: read past the end of file " + std::to_string(ino));
  std::fill(out.begin(), out.end(), uint8_t{0});
  const uint64_t bs = info_.block_size, end = offset + out.size();
  for (const Extent& x : n->extents) {
    if (x.unwritten || x.length == 0) continue;
    const uint64_t a = std::max(offset, x.logical * bs), b = std::min(end, (x.logical + x.length) * bs);
    if (a >= b) continue;
    Status s = view_.read_data(x.physical, a - x.logical * bs, out.subspan(a - offset, b - a));
    if (!s) return Status::error(what + ": " + s.message());
  }
  return Status::ok();
}

std::string ModelDriver::name_path(uint64_t dir, const std::string& name) {
  std::string p;
  if (!state_.path(dir, &p)) p = "/<unreachable:" + std::to_string(dir) + ">";
  if (p != "/") p += "/";
  return p + name;
}

Event ModelDriver::base_event(const FrameView& f, EventKind kind, uint64_t ino) {
  Event e;
  e.time_ns = f.timestamp_ns;
  e.frame_seq = f.seq;
  e.disk = ctx_.options.disk_name;
  e.partition = partition_;
  e.fs_uuid = info_.uuid;
  e.kind = kind;
  e.ino = ino;
  return e;
}

void ModelDriver::emit_modify(const FrameView& f, uint64_t ino, uint64_t file_offset, const uint8_t* data, uint64_t len) {
  if (!watched(ino)) return;
  Event e = base_event(f, EventKind::Modify, ino);
  if (!state_.path(ino, &e.path)) e.path.clear();
  e.offset = file_offset;
  e.length = len;
  if (const Inode* n = state_.inode(ino)) {
    e.has_attrs = true;
    e.attrs = without_extents(*n);
  }
  ctx_.stats.data_bytes_attributed += len;
  hashes_.written(ino, file_offset, data, len);
  out_.modify(std::move(e), data, len);
}

void ModelDriver::settle_hashes(const FrameView& f) {
  hashes_.settle(*this, out_, [&](uint64_t ino) {
    Event e = base_event(f, EventKind::Hash, ino);
    if (const Inode* n = state_.inode(ino)) {
      e.has_attrs = true;
      e.attrs = without_extents(*n);
    }
    return e;
  });
}

void ModelDriver::gate_blocks(uint64_t first, uint64_t count, bool pass) {
  Gate* gate = ctx_.options.gate;
  if (gate == nullptr || count == 0) return;
  uint64_t off = info_.partition_offset + first * info_.block_size, len = count * info_.block_size;
  if (off >= gate->disk_size()) return;
  len = std::min(len, gate->disk_size() - off);
  if (pass) {
    (void)gate->set_bytes(off, len);
  } else {
    const uint64_t g = gate->grain_size();
    const uint64_t a = (off + g - 1) / g * g, b = (off + len) / g * g;
    if (b > a) (void)gate->clear_bytes(a, b - a);
  }
  gate_dirty_ = true;
}

void ModelDriver::publish_gate() {
  if (gate_dirty_ && ctx_.options.gate != nullptr) {
    if (ctx_.options.gate->publish()) ctx_.stats.gate_updates++;
    gate_dirty_ = false;
  }
}

void ModelDriver::bound_pending() {
  while (view_.pending_bytes() > ctx_.options.pending_max_bytes && !view_.pending().empty()) {
    ctx_.stats.pending_evicted += view_.evict_oldest_pending();
  }
}

// ---------------------------------------------------------------------------
// Consistency points

void ModelDriver::note_change(uint64_t id, Change&& c, Changes* changes) {
  if (!c.now || c.reused) hashes_.forget(id);
  hashes_.touched(id, !c.old || c.reused || !c.now || c.old->size != c.now->size ||
                          !same_extents(c.old->extents, c.now->extents));
  changes->emplace(id, std::move(c));
}

void ModelDriver::apply_names(const FrameView& f, Changes& changes, Entries& now_entries) {
  // Name changes, ordered so that each event applies to the tree the ones
  // before it left (change_plan.h, docs/events.md).
  ChangePlan plan;
  for (auto& [id, c] : changes) {
    InodeChange ic;
    if (c.old) ic.old = without_extents(*c.old);
    if (c.now) ic.now = without_extents(*c.now);
    ic.new_incarnation = c.reused;
    if (c.old && c.old->type == FileType::Directory) ic.old_entries = state_.entries(id);
    if (c.now && c.now->type == FileType::Directory) {
      auto ne = now_entries.find(id);
      if (ne != now_entries.end()) ic.now_entries = std::move(ne->second);
    }
    plan.add(id, std::move(ic));
  }
  plan.build();

  // New attributes go in first (paths need only names); freed files stay
  // until their names are gone.
  for (auto& [id, c] : changes) {
    if (c.now) {
      state_.set_inode(*c.now);
      watched_cache_.erase(id);
    }
  }
  // Which files were watched under their old names (see below).
  auto fresh = [&](uint64_t id) {
    auto c = changes.find(id);
    return c != changes.end() && c->second.now && (!c->second.old || c->second.reused);
  };
  std::map<uint64_t, bool> watched_before;
  for (uint64_t id : plan.renamed_inodes()) {
    if (!fresh(id)) watched_before[id] = watched(id);
  }
  for (uint64_t id : plan.renamed_inodes()) hashes_.touched(id, true);  // a new path may be hashed
  std::vector<NameEvent> named;
  plan.apply(state_, &named);
  ctx_.stats.forced_ops += plan.forced();
  for (NameEvent& n : named) {
    Event e = base_event(f, n.kind, n.ino);
    e.path = std::move(n.path);
    e.old_path = std::move(n.old_path);
    e.replaced_ino = n.replaced_ino;
    auto c = changes.find(n.ino);
    const Inode* attrs = nullptr;
    if (n.old_incarnation) {
      if (c != changes.end() && c->second.old) attrs = &*c->second.old;
    } else {
      attrs = state_.inode(n.ino);
    }
    if (attrs != nullptr) {
      e.has_attrs = true;
      e.attrs = without_extents(*attrs);
    }
    watched_cache_.erase(n.ino);
    out_.emit(std::move(e));
  }

  // A name change can make a file (un)watched: its existing data follows in
  // the gate (new blocks are the driver's, with block ownership). Moved
  // under a watched name, its data so far was not sent (dropped by the
  // gate, or not attributed), so its current contents on the live disk are
  // what subscribers start from. Never from a replayed trace's first image.
  const bool gate_follows = ctx_.options.gate != nullptr && ctx_.options.policy.kind == GatePolicyKind::MetadataAndGlobs;
  const bool live = ctx_.options.gate != nullptr || ctx_.options.read_back_new_data;
  const uint64_t bs = info_.block_size;
  for (uint64_t id : plan.renamed_inodes()) {
    const Inode* n = state_.inode(id);
    if (n == nullptr || n->type != FileType::Regular) continue;
    const bool pass = watched(id);
    if (gate_follows) {
      for (const Extent& x : n->extents) gate_blocks(x.physical, x.length, pass);
    }
    auto wb = watched_before.find(id);
    if (!live || !pass || wb == watched_before.end() || wb->second) continue;
    const Inode copy = *n;
    for (const Extent& x : copy.extents) {
      if (x.unwritten) continue;
      for (uint64_t k = 0; k < x.length && (x.logical + k) * bs < copy.size; k++) {
        read_back(f, id, copy, x.logical + k, x.physical + k);
      }
    }
  }
}

void ModelDriver::emit_attribute_events(const FrameView& f, const Changes& changes) {
  for (const auto& [id, c] : changes) {
    if (!c.old || !c.now || c.reused) continue;
    const Inode& o = *c.old;
    const Inode& n = *c.now;
    std::string path;
    if (!state_.path(id, &path)) continue;  // orphan (open but unlinked)
    if (o.mode != n.mode || o.uid != n.uid || o.gid != n.gid) {
      Event e = base_event(f, EventKind::Attrib, id);
      e.path = path;
      e.has_attrs = true;
      e.attrs = without_extents(n);
      out_.emit(std::move(e));
    }
    if (n.type == FileType::Regular && o.size != n.size) {
      Event e = base_event(f, n.size < o.size ? EventKind::Truncate : EventKind::Extend, id);
      e.path = path;
      e.old_size = o.size;
      e.has_attrs = true;
      e.attrs = without_extents(n);
      out_.emit(std::move(e));
    }
  }
}

void ModelDriver::read_back_new_data(const FrameView& f, const std::vector<uint64_t>& reassigned,
                                     const Changes& changes) {
  if (ctx_.options.gate == nullptr && !ctx_.options.read_back_new_data) return;
  const uint64_t bs = info_.block_size;
  for (uint64_t id : reassigned) {
    auto it = changes.find(id);
    if (it == changes.end()) continue;
    const Change& c = it->second;
    if (!c.now || c.now->type != FileType::Regular || !watched(id)) continue;
    const std::vector<Extent> none;
    const std::vector<Extent>& oe = (c.old && !c.reused) ? c.old->extents : none;
    const Inode n = *c.now;
    for (const Extent& x : n.extents) {
      if (x.unwritten) continue;
      for (uint64_t k = 0; k < x.length && (x.logical + k) * bs < n.size; k++) {
        const uint64_t logical = x.logical + k, physical = x.physical + k;
        bool had = false;
        for (const Extent& y : oe) {
          if (logical >= y.logical && logical < y.logical + y.length && y.physical + (logical - y.logical) == physical)
            had = true;
        }
        if (had || view_.pending().count(physical)) continue;
        read_back(f, id, n, logical, physical);
      }
    }
  }
}

void ModelDriver::read_back(const FrameView& f, uint64_t id, const Inode& n, uint64_t logical, uint64_t physical) {
  const uint64_t bs = info_.block_size, from = logical * bs;
  if (from >= n.size) return;
  block_.resize(bs);
  if (!read_back_block(physical, block_.data())) return;
  emit_modify(f, id, from, block_.data(), std::min<uint64_t>(bs, n.size - from));
  ctx_.stats.data_blocks_read_back++;
}

void ModelDriver::free_deleted(const Changes& changes) {
  for (const auto& [id, c] : changes) {
    if (c.old && !c.now) state_.free_inode(id);
  }
}

}  // namespace dsvmi::infer

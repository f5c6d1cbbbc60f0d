#include "content_hashes.h"

#include "text_diff.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace dsvmi::infer {
namespace {

// Written bytes kept between consistency points (all files together). Past
// it the bytes are read back from the disk instead, which at a consistency
// point holds them unless a write of them is still in flight
// (docs/hashes.md, "What the hash is of").
constexpr uint64_t kMaxKeptBytes = 64ull << 20;
// Changed ranges kept per file between consistency points; past it the file
// is read whole at the next one (bounded memory for a write storm).
constexpr size_t kMaxRanges = 4096;
// Kept versions of small text files for diffs (all files together).
constexpr uint64_t kMaxTextBytes = 16ull << 20;
// changed_ranges in one event.
constexpr size_t kMaxEventRanges = 64;

}  // namespace

bool ContentHashes::enabled() const {
  return !ctx_.options.hash_globs.empty() && ctx_.options.read_back_new_data;
}

void ContentHashes::written(uint64_t ino, uint64_t offset, const uint8_t* data, uint64_t len) {
  if (!enabled() || len == 0) return;
  Dirty& d = dirty_[ino];
  d.content = true;
  if (!d.whole && d.ranges.size() >= kMaxRanges) {
    d.whole = true;
    d.ranges.clear();
    d.ranges.shrink_to_fit();
  }
  if (!d.whole) d.ranges.push_back({offset, len});
  if (data != nullptr && kept_bytes_ + len <= kMaxKeptBytes) {
    d.pieces.push_back({offset, std::vector<uint8_t>(data, data + len)});
    kept_bytes_ += len;
  }
}

void ContentHashes::touched(uint64_t ino, bool content_changed) {
  if (!enabled()) return;
  // Attribute-only changes matter only to files already hashed (a rename
  // that names them anew).
  if (!content_changed && files_.count(ino) == 0) return;
  Dirty& d = dirty_[ino];
  d.content = d.content || content_changed;
}

void ContentHashes::drop_text(Tracked& t) {
  text_bytes_ -= t.text.size();
  std::string().swap(t.text);
  t.has_text = false;
}

void ContentHashes::forget(uint64_t ino) {
  auto it = files_.find(ino);
  if (it == files_.end()) return;
  drop_text(it->second);
  if (it->second.hasher) hasher_bytes_ -= it->second.hasher->memory_bytes();
  files_.erase(it);
}

void ContentHashes::lost() {
  for (auto& [ino, t] : files_) {
    t.rehash = true;
    dirty_[ino].content = true;
  }
}

void ContentHashes::settle(FileContent& fs, EventOut& out, const std::function<Event(uint64_t ino)>& make_event) {
  if (dirty_.empty()) return;
  std::map<uint64_t, Dirty> batch;
  batch.swap(dirty_);
  for (auto& [ino, d] : batch) settle_one(ino, d, fs, out, make_event);
  kept_bytes_ = 0;
}

void ContentHashes::settle_one(uint64_t ino, Dirty& d, FileContent& fs, EventOut& out,
                               const std::function<Event(uint64_t ino)>& make_event) {
  uint64_t size = 0;
  std::string path;
  if (!fs.hashed_file(ino, &size, &path)) {
    forget(ino);
    return;
  }
  Tracked& t = files_[ino];
  if (!d.content && t.hasher && !t.rehash && path == t.last_path) return;
  Event e = make_event(ino);
  e.kind = EventKind::Hash;
  e.path = path;
  auto skip = [&](std::string why) {
    if (t.hasher) hasher_bytes_ -= t.hasher->memory_bytes();
    t.hasher.reset();
    t.last_sha.clear();
    drop_text(t);
    // Said once while nothing about it changes (a large log keeps growing).
    if (why == t.last_skipped && path == t.last_path) return;
    t.last_path = path;
    t.last_skipped = why;
    e.hash_skipped = std::move(why);
    ctx_.stats.hash_skipped++;
    out.emit(std::move(e));
  };
  const uint64_t max = ctx_.options.hash_max_bytes;
  if (size > max) {
    return skip("size " + std::to_string(size) + " is over the hash limit of " + std::to_string(max) + " bytes");
  }
  if (!t.hasher && hasher_bytes_ >= ctx_.options.hash_memory_bytes) {
    return skip("the engine's hash memory limit of " + std::to_string(ctx_.options.hash_memory_bytes) +
                " bytes is reached");
  }
  // The file as of this consistency point: the driver's view, with the
  // bytes written since the last one on top (later writes win).
  const ContentReader read = [&](uint64_t offset, std::span<uint8_t> buf) {
    Status s = fs.read_file(ino, offset, buf);
    if (!s) return s;
    const uint64_t end = offset + buf.size();
    for (const Piece& p : d.pieces) {
      const uint64_t pe = p.offset + p.bytes.size();
      if (pe <= offset || p.offset >= end) continue;
      const uint64_t from = std::max(offset, p.offset), to = std::min(end, pe);
      std::memcpy(buf.data() + (from - offset), p.bytes.data() + (from - p.offset), to - from);
    }
    return Status::ok();
  };
  HashCost cost;
  Status s;
  const size_t before = t.hasher ? t.hasher->memory_bytes() : 0;
  const uint64_t old_size = t.hasher ? t.hasher->size() : 0;
  const bool incremental = t.hasher && !t.rehash && !d.whole;
  if (!t.hasher || t.rehash || d.whole) {
    if (!t.hasher) s = ContentHasher::Create(ContentHasher::Options(), &t.hasher);
    if (s) s = t.hasher->rehash(size, read, &cost);
  } else {
    s = t.hasher->update(size, d.ranges, read, &cost);
  }
  ctx_.stats.hash_bytes_read += cost.bytes_read;
  ctx_.stats.hash_bytes_hashed += cost.bytes_hashed;
  if (!s) {
    // The hasher is unchanged by a failed update; without a good state the
    // next change must start over.
    hasher_bytes_ -= before;
    if (t.hasher) hasher_bytes_ += t.hasher->memory_bytes();
    t.rehash = true;
    return skip("reading the file failed: " + s.message());
  }
  hasher_bytes_ = hasher_bytes_ - before + t.hasher->memory_bytes();
  t.rehash = false;
  std::string sha = digest_hex(t.hasher->sha256());
  if (sha == t.last_sha && path == t.last_path) return;
  const uint64_t hash_read = cost.bytes_read;
  // A rename alone (same digest) keeps the kept version and reads nothing.
  if (sha != t.last_sha) describe_change(t, d, old_size, size, incremental, path, read, &cost, &e);
  ctx_.stats.hash_bytes_read += cost.bytes_read - hash_read;
  e.sha256 = sha;
  e.merkle_root = digest_hex(t.hasher->tree_root());
  e.hash_bytes_read = cost.bytes_read;
  t.last_skipped.clear();
  t.last_sha = std::move(sha);
  t.last_path = path;
  ctx_.stats.hash_events++;
  out.emit(std::move(e));
}

void ContentHashes::describe_change(Tracked& t, const Dirty& d, uint64_t old_size, uint64_t size, bool incremental,
                                    const std::string& path, const ContentReader& read, HashCost* cost, Event* e) {
  bool diffed = false;
  if (ctx_.options.diff_max_bytes > 0 && size <= ctx_.options.diff_max_bytes) {
    std::string now(size, '\0');
    Status s = read(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(now.data()), now.size()));
    cost->bytes_read += size;
    if (s && is_text(now)) {
      if (t.has_text && incremental) {
        DiffLimits lim;
        lim.max_bytes = ctx_.options.diff_output_bytes;
        TextDiff diff = unified_diff(t.text, now, "a" + t.last_path, "b" + path, lim);
        e->diff = std::move(diff.text);
        e->diff_added = diff.added;
        e->diff_removed = diff.removed;
        e->diff_truncated = diff.truncated;
        diffed = !e->diff.empty();
      }
      drop_text(t);
      if (text_bytes_ + now.size() <= kMaxTextBytes) {
        text_bytes_ += now.size();
        t.text = std::move(now);
        t.has_text = true;
      }
    } else {
      drop_text(t);
    }
  } else {
    drop_text(t);
  }
  if (diffed || !incremental) return;
  // Binary or large: the byte ranges written, and what the size change
  // added or cut.
  std::vector<std::pair<uint64_t, uint64_t>> r;
  for (const ChangedRange& c : d.ranges) {
    if (c.offset >= size || c.length == 0) continue;
    r.push_back({c.offset, std::min(c.length, size - c.offset)});
  }
  if (size != old_size) {
    const uint64_t lo = std::min(size, old_size);
    r.push_back({lo, std::max(size, old_size) - lo});
  }
  std::sort(r.begin(), r.end());
  for (const auto& x : r) {
    auto& out = e->changed_ranges;
    if (!out.empty() && x.first <= out.back().first + out.back().second) {
      out.back().second = std::max(out.back().first + out.back().second, x.first + x.second) - out.back().first;
    } else if (out.size() == kMaxEventRanges) {
      e->changed_ranges_cut = true;
      out.back().second = x.first + x.second - out.back().first;  // the last one covers the rest
    } else {
      out.push_back(x);
    }
  }
}

size_t ContentHashes::memory_bytes() const { return hasher_bytes_ + kept_bytes_ + text_bytes_; }

}  // namespace dsvmi::infer

// ContentHasher (dsvmi/content_hash.h): one pass over the bytes that must be
// read again, feeding SHA-256 from a saved state and re-hashing the Merkle
// leaves that changed. The algorithm and its costs are in docs/hashes.md.
#include <algorithm>
#include <cstring>
#include <vector>

#include "dsvmi/content_hash.h"
#include "engine/hash/merkle_levels.h"
#include "engine/hash/sha256_state.h"

namespace dsvmi {
namespace {

constexpr uint64_t kChunkBytes = 1 << 20;

// The leaves [first, last] that hold bytes of `r`, clipped to `size`.
void add_leaves(const ChangedRange& r, uint64_t size, uint64_t leaf, std::vector<uint64_t>* out) {
  if (r.length == 0 || r.offset >= size) return;
  uint64_t end = std::min(size, r.offset + std::min(r.length, size - r.offset));
  for (uint64_t i = r.offset / leaf; i <= (end - 1) / leaf; ++i) out->push_back(i);
}

}  // namespace

struct ContentHasher::Impl {
  Options options;
  uint64_t size = 0;
  uint64_t interval = 0;                 // checkpoint spacing now
  Sha256State end;                       // after [0, size)
  std::vector<Sha256State> checkpoints;  // [i]: after [0, (i + 1) * interval)
  MerkleLevels tree;

  // Appends the state after `pos` bytes when `pos` is the next checkpoint,
  // thinning to every other one when the cap is reached.
  static void maybe_checkpoint(uint64_t pos, const Sha256State& state, uint64_t* interval,
                               std::vector<Sha256State>* cps, uint32_t max) {
    if (pos == 0 || pos != (cps->size() + 1) * *interval) return;
    cps->push_back(state);
    if (cps->size() <= max) return;
    std::vector<Sha256State> kept;
    kept.reserve(cps->size() / 2);
    for (size_t i = 1; i < cps->size(); i += 2) kept.push_back((*cps)[i]);
    *cps = std::move(kept);
    *interval *= 2;
  }
};

ContentHasher::ContentHasher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ContentHasher::~ContentHasher() = default;

Status ContentHasher::Create(const Options& options, std::unique_ptr<ContentHasher>* out) {
  if (options.checkpoint_bytes == 0 || options.checkpoint_bytes % 64 != 0)
    return Status::error("content hash: checkpoint_bytes must be a positive multiple of 64");
  if (options.max_checkpoints < 2) return Status::error("content hash: max_checkpoints must be at least 2");
  if (options.leaf_bytes != 0 && (options.leaf_bytes < 512 || (options.leaf_bytes & (options.leaf_bytes - 1)) != 0))
    return Status::error("content hash: leaf_bytes must be 0 or a power of two of at least 512");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->interval = options.checkpoint_bytes;
  out->reset(new ContentHasher(std::move(impl)));
  return Status::ok();
}

Status ContentHasher::update(uint64_t new_size, std::span<const ChangedRange> changed, const ContentReader& read,
                             HashCost* cost) {
  Impl& m = *impl_;
  const uint64_t old_size = m.size;
  const uint64_t leaf = m.options.leaf_bytes;

  // Where SHA-256 must start again: the first changed byte, or the old end.
  uint64_t resume = new_size == old_size ? UINT64_MAX : std::min(old_size, new_size);
  for (const ChangedRange& r : changed)
    if (r.length != 0 && r.offset < new_size) resume = std::min(resume, r.offset);
  if (resume == UINT64_MAX) return Status::ok();  // nothing differs

  // The state to resume from: after the old end (a pure append) or the
  // last checkpoint at or before `resume`.
  uint64_t interval = m.interval;
  std::vector<Sha256State> cps;
  Sha256State state;
  uint64_t start = 0;
  if (resume == old_size) {
    state = m.end;
    start = old_size;
    cps = m.checkpoints;
  } else {
    size_t keep = std::min<uint64_t>(m.checkpoints.size(), resume / interval);
    cps.assign(m.checkpoints.begin(), m.checkpoints.begin() + keep);
    if (keep > 0) state = cps.back();
    start = keep * interval;
  }

  // Leaves to hash again: the changed ones and those whose extent the size
  // change moved.
  std::vector<uint64_t> dirty;
  if (leaf != 0) {
    for (const ChangedRange& r : changed) add_leaves(r, new_size, leaf, &dirty);
    if (new_size != old_size) {
      uint64_t low = std::min(old_size, new_size);
      add_leaves({low, new_size - low}, new_size, leaf, &dirty);
      if (new_size < old_size && new_size % leaf != 0) dirty.push_back(new_size / leaf);
    }
    std::sort(dirty.begin(), dirty.end());
    dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
  }
  const uint64_t leaf_count = leaf == 0 ? 0 : (new_size + leaf - 1) / leaf;
  std::vector<Sha256Digest> new_leaves;  // hashes of `dirty`, in order
  new_leaves.reserve(dirty.size());

  // One pass over [read_from, new_size): reading from the start of the leaf
  // that holds `start` lets the same bytes feed both hashes. Chunks end on
  // leaf boundaries so every leaf is whole in one buffer.
  uint64_t read_from = leaf == 0 ? start : start / leaf * leaf;
  HashCost local;
  std::vector<uint8_t> buf;
  size_t next_dirty = 0;
  for (uint64_t pos = read_from; pos < new_size;) {
    uint64_t chunk = std::max<uint64_t>(kChunkBytes, leaf);
    uint64_t n = std::min(new_size - pos, chunk - pos % chunk);
    buf.resize(n);
    Status s = read(pos, std::span<uint8_t>(buf.data(), n));
    if (!s)
      return Status::error("content hash: reading " + std::to_string(n) + " bytes at " + std::to_string(pos) + ": " +
                           s.message());
    local.bytes_read += n;
    // SHA-256: only bytes at or past `start`, stopping at each checkpoint.
    uint64_t p = std::max(pos, start);
    while (p < pos + n) {
      uint64_t next_cp = (cps.size() + 1) * interval;
      uint64_t stop = std::min(pos + n, next_cp > p ? next_cp : pos + n);
      state.update(buf.data() + (p - pos), stop - p);
      local.bytes_hashed += stop - p;
      p = stop;
      Impl::maybe_checkpoint(p, state, &interval, &cps, m.options.max_checkpoints);
    }
    // Leaves of this chunk that changed.
    while (next_dirty < dirty.size() && dirty[next_dirty] * leaf < pos + n) {
      uint64_t off = dirty[next_dirty] * leaf;
      uint64_t len = std::min<uint64_t>(leaf, new_size - off);
      new_leaves.push_back(merkle_leaf_hash(std::span<const uint8_t>(buf.data() + (off - pos), len)));
      local.bytes_hashed += len;
      ++next_dirty;
    }
    pos += n;
  }
  if (next_dirty != dirty.size()) return Status::error("content hash: internal: a changed leaf was not read");

  m.size = new_size;
  m.end = state;
  m.checkpoints = std::move(cps);
  m.interval = interval;
  if (leaf != 0) m.tree.update(leaf_count, dirty, new_leaves);
  if (cost != nullptr) {
    cost->bytes_read += local.bytes_read;
    cost->bytes_hashed += local.bytes_hashed;
  }
  return Status::ok();
}

Status ContentHasher::rehash(uint64_t new_size, const ContentReader& read, HashCost* cost) {
  std::unique_ptr<ContentHasher> fresh;
  Status s = Create(impl_->options, &fresh);
  if (!s) return s;
  ChangedRange all{0, new_size};
  s = fresh->update(new_size, std::span<const ChangedRange>(&all, 1), read, cost);
  if (!s) return s;
  impl_ = std::move(fresh->impl_);
  return Status::ok();
}

uint64_t ContentHasher::size() const { return impl_->size; }

Sha256Digest ContentHasher::sha256() const { return impl_->end.finish(); }

Sha256Digest ContentHasher::tree_root() const {
  if (impl_->options.leaf_bytes == 0) return Sha256Digest{};
  return impl_->tree.root();
}

size_t ContentHasher::memory_bytes() const {
  return sizeof(Impl) + impl_->checkpoints.capacity() * sizeof(Sha256State) + impl_->tree.memory_bytes();
}

std::string digest_hex(const Sha256Digest& d) {
  static const char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (size_t i = 0; i < d.size(); ++i) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

}  // namespace dsvmi

// ContentHasher: the SHA-256 of one file's content, kept up to date as the
// file changes without re-reading what did not change (docs/hashes.md).
//
// It keeps the hash state after the file's last byte, so an append hashes
// only the new bytes, and states at checkpoints through the file, so a
// write in the middle re-reads from the checkpoint before it to the end
// (never the part before). Beside the exact SHA-256 — what `sha256sum`
// prints — it keeps an RFC 6962 Merkle tree over fixed-size leaves whose
// root changes with only the touched leaves re-read: the cheap fingerprint
// for large files rewritten in the middle.
//
// Not thread-safe; one hasher per file. Memory: O(checkpoints + leaves),
// both bounded by Options (the leaf count by the policy's size limit).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi {

using Sha256Digest = std::array<uint8_t, 32>;

// Lower-case hex, as sha256sum prints it.
std::string digest_hex(const Sha256Digest& d);

// Reads `out.size()` bytes of the file's current content at `offset`.
// Precondition for callers: offset + out.size() <= the size passed to
// update(). A read that fails leaves the hasher unchanged (update returns
// the error).
using ContentReader = std::function<Status(uint64_t offset, std::span<uint8_t> out)>;

// A byte range of the file's new content that may differ from before.
struct ChangedRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct HashCost {
  uint64_t bytes_read = 0;    // through the ContentReader
  uint64_t bytes_hashed = 0;  // into SHA-256 (content and tree leaves)
};

class ContentHasher {
 public:
  struct Options {
    // A state is kept every `checkpoint_bytes` of content (a multiple of
    // 64, SHA-256's block); when more than `max_checkpoints` would be
    // needed the spacing doubles, so a huge file costs at most
    // max_checkpoints states (~112 bytes each).
    uint64_t checkpoint_bytes = 1 << 20;
    uint32_t max_checkpoints = 1024;
    // Merkle leaves (a power of two ≥ 512); 0 turns the tree off.
    uint32_t leaf_bytes = 64 << 10;
  };

  // A hasher of the empty file.
  static Status Create(const Options& options, std::unique_ptr<ContentHasher>* out);
  ~ContentHasher();
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;

  // The file is now `new_size` bytes; bytes outside `changed` and below the
  // previous size are as at the previous update (bytes past the previous
  // size are always read). `changed` may overlap and be unsorted; ranges
  // past new_size are clipped. An empty `changed` with a larger size is an
  // append; a smaller size, a truncation (re-reads from the checkpoint
  // before the new end only). On error nothing changes.
  Status update(uint64_t new_size, std::span<const ChangedRange> changed, const ContentReader& read, HashCost* cost);

  // Forgets everything and hashes [0, new_size) from scratch (after a
  // resync, when what changed is not known).
  Status rehash(uint64_t new_size, const ContentReader& read, HashCost* cost);

  uint64_t size() const;
  Sha256Digest sha256() const;
  // RFC 6962 Merkle Tree Hash over the leaves: MTH of no leaves is
  // SHA-256(""), a leaf is SHA-256(0x00 || bytes), a node SHA-256(0x01 ||
  // left || right), split at the largest power of two below the count.
  // All zero when the tree is off.
  Sha256Digest tree_root() const;

  // Bytes of memory the hasher holds (states and leaf hashes).
  size_t memory_bytes() const;

 private:
  struct Impl;
  explicit ContentHasher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// RFC 6962 Merkle Tree Hash of leaf hashes (each SHA-256(0x00 || leaf)),
// exposed for tests and for verifying a root from per-leaf hashes.
Sha256Digest merkle_tree_hash(std::span<const Sha256Digest> leaf_hashes);
Sha256Digest merkle_leaf_hash(std::span<const uint8_t> leaf);

}  // namespace dsvmi

// ContentHashes: the SHA-256 of each hashed file (docs/hashes.md) kept up to
// date from the write stream and emitted as a `hash` event at the
// consistency point that made the change visible. File-system neutral: a
// driver reports the bytes it attributed to a file (written) and the files
// whose metadata changed (touched), and answers FileContent questions; the
// hashers (dsvmi/content_hash.h) re-read only what changed.
//
// Why a separate event and not a field on modify: a modify event leaves when
// its data is attributed (milliseconds), before the consistency point that
// fixes the file's size; the hash needs that size, and holding modify events
// back until then would cost their latency.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "dsvmi/content_hash.h"
#include "dsvmi/events.h"
#include "dsvmi/status.h"
#include "engine_context.h"
#include "event_out.h"

namespace dsvmi::infer {

// What a driver answers about a file's current content (its model as of the
// consistency point being settled).
class FileContent {
 public:
  virtual ~FileContent() = default;
  // True if `ino` is a regular file the policy hashes; then its size and
  // the path the event names.
  virtual bool hashed_file(uint64_t ino, uint64_t* size, std::string* path) = 0;
  // [offset, offset + out.size()) of the file's content (holes read as
  // zeroes). Precondition: the range lies below the size hashed_file gave.
  virtual Status read_file(uint64_t ino, uint64_t offset, std::span<uint8_t> out) = 0;
};

class ContentHashes {
 public:
  explicit ContentHashes(EngineContext& ctx) : ctx_(ctx) {}

  // Hashing is asked for (--hash / the policy's hash globs) on a live disk.
  bool enabled() const;
  // Data attributed to a file: [offset, offset + len). The bytes are kept
  // until the next settle (bounded), so a write the disk has not completed
  // yet is hashed as written.
  void written(uint64_t ino, uint64_t offset, const uint8_t* data, uint64_t len);
  // The file's metadata changed; content_changed: new file, new size or new
  // block map (an attribute-only change costs nothing).
  void touched(uint64_t ino, bool content_changed);
  // The inode was freed or reused: its hash state goes.
  void forget(uint64_t ino);
  // Frames were lost: every hash state is rebuilt from the disk at the next
  // settle.
  void lost();
  // At a consistency point: update every file written or touched since the
  // last one and emit a hash event for each whose digest or path changed
  // (or that is over the size limit: hash_skipped says so). make_event
  // builds an event of the given kind for an inode (disk, partition, frame).
  void settle(FileContent& fs, EventOut& out, const std::function<Event(uint64_t ino)>& make_event);

  // Bytes of memory the hash states and kept bytes hold.
  size_t memory_bytes() const;

 private:
  struct Piece {
    uint64_t offset;
    std::vector<uint8_t> bytes;
  };
  struct Tracked {
    std::unique_ptr<ContentHasher> hasher;  // null: not hashed yet
    std::string last_sha, last_path;        // what the last hash event said
    std::string last_skipped;               // its hash_skipped ("" = it had a digest)
    std::string text;                       // last version, for diffs (small text files)
    bool has_text = false;
    bool rehash = false;                    // changes unknown: read it all
  };
  struct Dirty {
    std::vector<ChangedRange> ranges;
    std::vector<Piece> pieces;  // written bytes, in write order
    bool content = false;
    bool whole = false;  // too many ranges to keep: read it all
  };
  void settle_one(uint64_t ino, Dirty& d, FileContent& fs, EventOut& out,
                  const std::function<Event(uint64_t ino)>& make_event);

  EngineContext& ctx_;
  std::unordered_map<uint64_t, Tracked> files_;
  std::map<uint64_t, Dirty> dirty_;
  uint64_t kept_bytes_ = 0;
  uint64_t hasher_bytes_ = 0;  // sum of memory_bytes() of the hashers
  uint64_t text_bytes_ = 0;    // sum of the kept versions
  void drop_text(Tracked& t);
  // Fills the diff (or changed_ranges) of a hash event; may read the file.
  void describe_change(Tracked& t, const Dirty& d, uint64_t old_size, uint64_t size, bool incremental,
                       const std::string& path, const ContentReader& read, HashCost* cost, Event* e);
};

}  // namespace dsvmi::infer

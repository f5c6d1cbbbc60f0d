// File-level events inferred from the write stream (issue 6), and the sink
// interface they go to. Schema of the JSON Lines form: docs/events.md.
//
// An event names a file by path *at the moment the event applies*: applying
// the events in emission order to the initial tree yields the current tree
// (the engine orders each batch so that this holds; see docs/inference.md).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dsvmi/fs_model.h"
#include "dsvmi/status.h"

namespace dsvmi {

enum class EventKind : uint8_t {
  Create,    // new regular file (or device/fifo/socket)
  Mkdir,     // new directory
  Symlink,   // new symlink; attrs.symlink_target holds the target
  Link,      // an existing inode got another name (hard link)
  Unlink,    // a name went away, the inode is still linked elsewhere
  Delete,    // the last name of a file went away and the inode was freed
  Rmdir,     // a directory went away
  Rename,    // old_path -> path (replaced_ino != 0: it went over an existing name)
  Attrib,    // mode/uid/gid changed
  Truncate,  // size went down (size = new size)
  Extend,    // size went up without data we saw (size = new size)
  Modify,    // data written: [offset, offset + length) of the file
  Overflow,  // frames were lost; the named range was re-read and repaired
  Hash,      // content hash of a hashed file at a consistency point (docs/hashes.md)
};

const char* event_kind_name(EventKind kind);

struct Event {
  uint64_t seq = 0;           // per engine, from 1, no gaps
  uint64_t time_ns = 0;       // frame timestamp (CLOCK_MONOTONIC of the producer) that made it visible
  uint64_t frame_seq = 0;     // that frame's sequence number
  std::string disk;           // what --disk names
  uint32_t partition = 0;     // Partition::number (0 = whole disk)
  std::string fs_uuid;
  EventKind kind = EventKind::Create;
  uint64_t ino = 0;
  std::string path;           // new/current path ("" for Overflow)
  std::string old_path;       // Rename only
  uint64_t replaced_ino = 0;  // Rename over an existing name
  bool has_attrs = false;
  Inode attrs;                // normalized attributes after the event (no extents)
  uint64_t old_size = 0;      // Truncate/Extend
  uint64_t offset = 0, length = 0;  // Modify: file bytes; Overflow: disk bytes
  std::vector<uint8_t> data;  // Modify with data capture on: the bytes written
  uint64_t lost_frames = 0;   // Overflow
  // Hash: lower-case hex SHA-256 of the file's content (what sha256sum
  // prints) and the RFC 6962 Merkle root over 64 KiB leaves; or, when the
  // file was not hashed, hash_skipped says why (both digests empty).
  std::string sha256, merkle_root, hash_skipped;
  uint64_t hash_bytes_read = 0;  // Hash: bytes of the file read for this update
  // Hash, when the file changed since the last hash event: a unified diff
  // of the change for a small text file (docs/hashes.md, "Diffs"), else the
  // byte ranges written (at most 64; changed_ranges_cut
  // when there were more).
  std::string diff;
  uint64_t diff_added = 0, diff_removed = 0;
  bool diff_truncated = false;
  std::vector<std::pair<uint64_t, uint64_t>> changed_ranges;  // (offset, length), sorted, merged
  bool changed_ranges_cut = false;
  int64_t latency_us = -1;    // live ring input: emission time - time_ns (CLOCK_MONOTONIC); -1: not measured
};

// Where events go. emit() is called from the engine's thread, in order.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void emit(const Event& event) = 0;
  virtual void flush() {}
};

// One JSON object per line. The FILE* is not owned.
class JsonlEventSink : public EventSink {
 public:
  explicit JsonlEventSink(FILE* out) : out_(out) {}
  void emit(const Event& event) override;
  void flush() override { fflush(out_); }

 private:
  FILE* out_;
  std::string line_;
};

// Appends `event` as one JSON object (no newline) to *out.
void event_to_json(const Event& event, std::string* out);
// Appends s as a JSON string literal (quotes included; bytes that are not
// valid UTF-8 become \u00XX escapes of the raw byte, so any name survives).
void json_string(const std::string& s, std::string* out);

// Collects events in memory (tests, benchmarks).
class VectorEventSink : public EventSink {
 public:
  void emit(const Event& event) override { events.push_back(event); }
  std::vector<Event> events;
};

}  // namespace dsvmi

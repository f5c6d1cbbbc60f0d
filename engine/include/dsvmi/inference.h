// The inference engine (issue 6): frames from the ring or a capture trace
// (one code path: feed()) become file-level events (events.h).
//
//   auto engine = InferenceEngine::create(*index, *disk, sink, options, &status);
//   for each frame: engine->feed(frame_view);   // or feed_bytes(trace record)
//   engine->finish();
//
// What it does, in short (docs/inference.md has the why): every metadata
// block it needs is shadowed in memory (read lazily from the disk, then
// updated by writes and by committed jbd2 transactions); at each consistency
// point (a journal commit, or a guest Flush) the dirty inodes and directories
// are decoded with the ext4 crawler's own decoder and diffed against the
// engine's model of the file system (the crawl index underneath, an overlay of
// changes on top), and the differences become ordered events. Data writes to
// files become modify events; data that arrives before the metadata that
// owns it waits in a bounded pending store.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dsvmi/disk_reader.h"
#include "dsvmi/events.h"
#include "dsvmi/frame_view.h"
#include "dsvmi/index.h"
#include "dsvmi/latency.h"
#include "dsvmi/policy.h"
#include "dsvmi/status.h"

namespace dsvmi {

class Gate;

struct InferenceOptions {
  // Which files are watched: their data writes become modify events (and in
  // low-overhead mode their data passes the gate). MetadataOnly watches
  // nothing, PassAll every regular file.
  GatePolicy policy{GatePolicyKind::PassAll, {}};
  bool capture_data = false;        // put the written bytes into modify events
  uint64_t pending_ttl_ns = 300ull * 1000000000;  // seed's "Unknown Write TTL"
  uint64_t pending_max_bytes = 32ull << 20;       // pending store memory cap
  uint64_t journal_cache_blocks = 8192;           // journal blocks held awaiting their commit
  // File systems without a journal (FAT, docs/fat.md): a consistency point
  // after quiet_ns without a metadata write (by the frames' clock, or
  // idle()), and at the latest max_unsettled_ns after the first unsettled one.
  uint64_t quiet_ns = 200ull * 1000000;
  uint64_t max_unsettled_ns = 2ull * 1000000000;
  // The disk is live (ring mode): newly allocated blocks of watched files
  // whose data the engine did not see (gate dropped it, or the pending store
  // evicted it) are read back from the disk at the commit. Never for a
  // trace replayed against the first image (it would read stale data).
  bool read_back_new_data = false;
  std::string disk_name;            // copied into every event
  // Low-overhead mode: the engine keeps this gate in step with the file
  // system (metadata + watched files' data pass). nullptr: no gate.
  Gate* gate = nullptr;
  // Live ring input: each event gets latency_us = CLOCK_MONOTONIC now -
  // time_ns of its frame (same host), recorded in the latency histograms.
  // Never for a trace replay (its timestamps are from another time).
  bool measure_latency = false;
  // Content hashes (docs/hashes.md): watched regular files matching one of
  // these globs get a hash event at each consistency point that changed
  // them. Empty: off. Only with a live disk (read_back_new_data): the hash
  // reads what did not change from the disk.
  std::vector<std::string> hash_globs;
  uint64_t hash_max_bytes = 1ull << 30;      // larger files: hash_skipped
  uint64_t hash_memory_bytes = 64ull << 20;  // all hash states together
  // Diffs in hash events: text files of at most diff_max_bytes (0: none)
  // keep their last version; a diff is cut at diff_output_bytes.
  uint64_t diff_max_bytes = 64 << 10;
  uint64_t diff_output_bytes = 16 << 10;
};

// What set_policy() did.
struct PolicyApplyResult {
  bool gate = false;            // a gate is kept (--gate)
  bool gate_pass_all = false;   // the gate now passes everything (full mode)
  uint64_t gate_grains = 0;     // grains set in the gate's bitmap after the change
  uint64_t metadata_blocks = 0; // fs blocks passed as metadata
  uint64_t data_blocks = 0;     // fs blocks passed as data of watched files
  uint64_t watched_files = 0;   // files matching the globs (MetadataAndGlobs)
};

struct InferenceStats {
  uint64_t frames = 0, writes = 0, write_bytes = 0, flushes = 0;
  uint64_t lost_records = 0, lost_frames = 0, seq_gaps = 0;
  uint64_t bad_frames = 0;             // frames that failed verification
  uint64_t consistency_points = 0;
  uint64_t quiet_points = 0;           // consistency points after a quiet interval (FAT)
  uint64_t metadata_rereads = 0;       // whole-volume metadata re-reads (FAT)
  uint64_t journal_commits = 0, journal_blocks_applied = 0, journal_blocks_read_back = 0;
  uint64_t journal_bad_blocks = 0;     // descriptor tags/blocks rejected
  uint64_t metadata_block_writes = 0;  // home writes to metadata blocks
  uint64_t inodes_decoded = 0;
  uint64_t data_bytes_attributed = 0;  // data bytes that became modify events
  uint64_t data_blocks_read_back = 0;  // watched data the gate dropped, re-read at commit
  uint64_t pending_bytes = 0, pending_blocks = 0;  // now
  uint64_t pending_expired = 0, pending_evicted = 0;  // pieces dropped (TTL / memory cap)
  uint64_t shadow_blocks = 0;          // now
  uint64_t disk_block_reads = 0;       // blocks read back from the disk
  uint64_t decode_problems = 0;        // damage the decoder reported
  std::string last_decode_problem;
  uint64_t forced_ops = 0;             // name operations applied out of a consistent order
  uint64_t gate_updates = 0;           // gate publications
  uint64_t events = 0;
  uint64_t policy_changes = 0;         // set_policy() calls applied
  uint64_t hash_events = 0, hash_skipped = 0;  // hash events with a digest / with hash_skipped
  uint64_t hash_bytes_read = 0, hash_bytes_hashed = 0;  // file bytes read / fed to SHA-256 for them
  // Event latency (measure_latency): since the start, in microseconds.
  LatencyHistogram latency;
};

class InferenceEngine {
 public:
  // The index must describe the disk as it was when the first frame was
  // written (a crawl of that state); the disk is read for blocks the engine
  // has not seen written. Both must outlive the engine.
  static std::unique_ptr<InferenceEngine> create(const Index& index, DiskReader& disk, EventSink& sink,
                                                 const InferenceOptions& options, Status* error);
  virtual ~InferenceEngine() = default;

  // One verified frame. Errors are about the engine itself (e.g. the gate);
  // hostile frame content is counted and skipped, never an error.
  virtual Status feed(const FrameView& frame) = 0;
  // One raw frame (a trace record): verified, decoded, then feed().
  virtual Status feed_bytes(std::span<const std::byte> frame) = 0;
  // End of input: expires what the pending store still holds (counted).
  virtual Status finish() = 0;
  // Between frames, when none arrived for a while: file systems without a
  // journal (FAT) reach a consistency point after a quiet interval
  // (InferenceOptions::quiet_ns). now_ns: CLOCK_MONOTONIC, the clock of the
  // frames' timestamps. Returns the CLOCK_MONOTONIC time the engine next
  // wants idle() (UINT64_MAX: no need).
  virtual uint64_t idle(uint64_t now_ns) = 0;

  // The engine's current tree, one JSON object per line, sorted by path:
  // {"path","ino","type","mode","uid","gid","size","links","mtime_ns","target"}.
  virtual void dump_state(std::string* out) = 0;
  virtual const InferenceStats& stats() const = 0;

  // Live policy change (between frames; no frame is skipped): which files are
  // watched (modify events) from now on, and, with a gate, the gate is
  // recomputed from the engine's current model (crawl index + what changed
  // since): metadata always, the data blocks of exactly the watched files,
  // pass-all mode for PassAll. Published once. A bad glob is refused and
  // nothing changes.
  virtual Status set_policy(const GatePolicy& policy, PolicyApplyResult* result) = 0;
  virtual const GatePolicy& policy() const = 0;
  // Pending store limits (InferenceOptions::pending_ttl_ns/pending_max_bytes).
  virtual void set_pending_limits(uint64_t ttl_ns, uint64_t max_bytes) = 0;
  // The event latency histogram since the previous call (then cleared).
  virtual void take_interval_latency(LatencyHistogram* out) = 0;
};

}  // namespace dsvmi

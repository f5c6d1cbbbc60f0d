// FsDriver: the boundary between the file-system-neutral inference engine
// (engine/infer) and one file system type's live decoding (engine/fs/<type>/
// live). docs/architecture.md ("The file-system boundary") and
// docs/inference.md explain what sits on which side.
//
// The router (engine.cc) owns the frame stream: it checks sequence numbers,
// splits each write/zero/discard at partition boundaries and hands each
// driver only the bytes inside its partition; it turns Flush and Lost
// frames into flush() / lost() calls and owns the gate's generations
// (clear, ask every driver for its grains, publish once).
//
// A driver owns everything whose meaning depends on the on-disk format:
//   - classifying a written block (metadata of some kind, a journal block,
//     data of a file, or not known yet: the pending store),
//   - deciding when a batch of writes is consistent (ext4: a jbd2 commit or
//     a guest Flush; a file system without a journal must say its own rule),
//   - decoding changed metadata into the neutral model (dsvmi/fs_model.h)
//     so the shared FsState / ChangePlan can diff and order it into events,
//   - which blocks the gate must pass (metadata, watched files' data).
// Shared building blocks a driver uses: BlockView (shadow + pending store
// over the disk), FsState (index + overlay model), ChangePlan (event order),
// EngineContext (options, stats, sink).
//
// Every call runs on the engine's one thread, between frames. A driver never
// fails a frame: hostile content is counted (InferenceStats) and skipped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsvmi/disk_reader.h"
#include "dsvmi/frame_view.h"
#include "dsvmi/glob.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "dsvmi/status.h"
#include "engine_context.h"

namespace dsvmi {
class Gate;
}

namespace dsvmi::infer {

class FsDriver {
 public:
  virtual ~FsDriver() = default;

  // Reads what the driver needs beyond the index (e.g. the superblock, the
  // journal's geometry); an error names the problem and keeps the driver
  // out of the engine.
  virtual Status init() = 0;

  // The file system's byte range on the disk.
  virtual uint64_t first_byte() const = 0;
  virtual uint64_t end_byte() const = 0;

  // [disk_offset, disk_offset + len) lies inside this file system's
  // partition. data == nullptr: zeroes. discard: content undefined.
  virtual void write(const FrameView& f, uint64_t disk_offset, uint64_t len, const uint8_t* data,
                     bool discard) = 0;
  // A guest Flush: every write before it is on the disk.
  virtual void flush(const FrameView& f) = 0;
  // Frames were lost: [disk_offset, +len) inside the partition (len == 0:
  // somewhere, unknown) must be resynchronized from the disk.
  virtual void lost(const FrameView& f, uint64_t disk_offset, uint64_t len) = 0;
  // End of input.
  virtual void finish() = 0;
  // No frame for a while; now_ns is CLOCK_MONOTONIC, the frames' clock. A
  // driver whose consistency rule includes a quiet interval (FAT) acts on it
  // here. Returns when it next wants to be called (UINT64_MAX: no need).
  virtual uint64_t idle(uint64_t now_ns) { return UINT64_MAX; }
  // The driver's current tree as dump_state() lines (inference.h).
  virtual void dump_state(std::vector<std::string>* lines) = 0;

  // Policy change (ctx.options.policy already holds the new one): the new
  // globs.
  virtual void set_globs(std::vector<Glob> globs) = 0;
  // Sets in `gate` the grains this file system needs under the current
  // policy, from the current model: its metadata, the data of watched
  // files. Does not publish.
  virtual Status add_gate_grains(Gate& gate, PolicyApplyResult* result) = 0;
};

// The live driver for a file system of the index, by its type; nullptr with
// *why set when no driver follows that type live (it is then gated from the
// crawl index only: engine.cc).
std::unique_ptr<FsDriver> make_fs_driver(EngineContext& ctx, const FsIndex& index, DiskReader& disk,
                                         uint32_t partition, std::string* why);

}  // namespace dsvmi::infer

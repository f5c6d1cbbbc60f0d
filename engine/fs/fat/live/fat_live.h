// FatLive: the live driver (infer/fs_driver.h) for one FAT12/16/32 file
// system of the disk. FAT has no journal, so its consistency points are a
// guest Flush, a quiet interval after the last metadata write, and a bound
// on how long metadata may stay unsettled (docs/fat.md, "Live inference").
// At a consistency point the driver re-reads the volume's metadata (boot
// sector, FAT, every directory) with the crawler's own code through the
// engine's view of the disk (written metadata over the disk), diffs the
// result against its model by file id (identity.h) and orders the
// differences into events with the shared ChangePlan.
//
// Data: a write to a cluster of a watched file (by the model of the last
// consistency point) is a modify event at once; a write to a cluster no file
// owns waits in the pending store until a consistency point gives it an
// owner (or its TTL ends).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../../infer/model_driver.h"
#include "../bpb.h"

namespace dsvmi::infer {

class FatLive : public ModelDriver {
 public:
  FatLive(EngineContext& ctx, const FsIndex& index, DiskReader& disk, uint32_t partition);
  // Reads and validates the boot sector through the view; the geometry must
  // be the crawl's (same sector size as the index's block size).
  Status init() override;

  void write(const FrameView& f, uint64_t disk_offset, uint64_t len, const uint8_t* data, bool discard) override;
  void flush(const FrameView& f) override;
  void lost(const FrameView& f, uint64_t disk_offset, uint64_t len) override;
  void finish() override;
  uint64_t idle(uint64_t now_ns) override;

  // Metadata (reserved sectors, every FAT copy, the FAT12/16 root region,
  // every directory's clusters) and the clusters of watched files.
  Status add_gate_grains(Gate& gate, PolicyApplyResult* result) override;

 private:
  Status read_back_block(uint64_t b, uint8_t* out) override;
  // What the sector is: metadata (Superblock, MapNode, Directory), FileData
  // or Free, from the model of the last consistency point.
  BlockOwner owner_of(uint64_t sector) const;
  // Runs a consistency point first when the metadata has been quiet (or
  // unsettled) long enough by the frame clock.
  void maybe_settle(const FrameView& f);
  void consistency_point(const FrameView& f);
  void settle_pending(const FrameView& f);
  void mark_metadata_written(const FrameView& f);

  fat::Geometry g_;
  uint64_t system_sectors_ = 0;  // reserved + FATs (+ FAT12/16 root region): always metadata
  bool metadata_dirty_ = false;
  uint64_t first_dirty_ns_ = 0, last_metadata_ns_ = 0;
  FrameView last_frame_;  // the clock and sequence of idle() consistency points
};

}  // namespace dsvmi::infer

// Gate policies: which disk grains the gate (bitmap/) passes, derived from the
// crawl index's reverse map.
//
//   metadata-only   every metadata block: superblocks, group descriptors,
//                   bitmaps, inode tables, directories, extent/indirect
//                   nodes, xattr blocks and the journal (the inference engine
//                   needs all of them to follow the file system);
//   metadata+globs  the above plus the data blocks of regular files and
//                   symlinks having at least one path that matches a glob;
//   pass-all        every grain of the disk.
//
// Grains are fixed-size byte ranges of the whole disk (grain g covers
// [g*grain_size, (g+1)*grain_size)); a file-system block that straddles two
// grains (unaligned partition, grain smaller than a block) sets both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/index.h"
#include "dsvmi/status.h"

typedef struct roaring_bitmap_s roaring_bitmap_t;

namespace dsvmi {

enum class GatePolicyKind { MetadataOnly, MetadataAndGlobs, PassAll };

struct GatePolicy {
  GatePolicyKind kind = GatePolicyKind::MetadataOnly;
  std::vector<std::string> globs;  // MetadataAndGlobs only (see glob.h)
};

struct GatePolicyStats {
  uint64_t metadata_blocks = 0;  // fs blocks passed as metadata
  uint64_t data_blocks = 0;      // fs blocks passed as data of matching files
  uint64_t matched_files = 0;    // inodes whose data passes
  uint64_t grains = 0;           // grains set
};

// Adds to `grains` (32-bit grain numbers) the grains `policy` needs on the
// disk `index` describes. Errors: grain size not a power of two >= 512,
// grain numbers above 2^32, bad globs, a damaged index.
Status build_gate_grains(const Index& index, const GatePolicy& policy, uint32_t grain_size,
                         roaring_bitmap_t* grains, GatePolicyStats* stats);

// The same for one file system of an index (metadata and, for globs, the
// data of matching files; nothing for PassAll). Adds to `stats` without
// setting stats->grains.
Status build_fs_gate_grains(const FsIndex& fs, const GatePolicy& policy, uint32_t grain_size,
                            roaring_bitmap_t* grains, GatePolicyStats* stats);

// Adds the grains overlapping fs blocks [first, first + count) of `fs`.
Status add_block_grains(const FilesystemInfo& fs, uint64_t first, uint64_t count, uint32_t grain_size,
                        roaring_bitmap_t* grains);

class Gate;

// Makes `gate` (bitmap/include/dsvmi/gate_writer.h) pass what `policy` needs
// and publishes one generation: pass-all sets the gate's pass-all mode; the
// other policies replace its grain set (mode "set"). The index must describe
// the gate's disk (same size).
Status apply_gate_policy(const Index& index, const GatePolicy& policy, Gate& gate, GatePolicyStats* stats);

// "metadata", "pass-all", or "glob" (then `globs` must be non-empty).
bool parse_gate_policy(const std::string& name, GatePolicyKind* kind);

}  // namespace dsvmi

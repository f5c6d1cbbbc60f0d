// Grains: the gate's unit. A grain is a power-of-two number of bytes (4 KiB
// by default, 512 B allowed), numbered from byte 0 of the disk. A file-system
// block that straddles grains (a partition not starting on a grain boundary,
// e.g. the classic MBR sector 63) covers every grain it touches.
#pragma once

#include <cstdint>

namespace dsvmi {

// The grains [first, first + count).
struct GrainRange {
  uint64_t first = 0;
  uint64_t count = 0;
  bool operator==(const GrainRange&) const = default;
};

// Grains overlapping the bytes [offset, offset + length); empty for length 0.
// The caller keeps offset + length within 2^64 (disk sizes are far below).
inline GrainRange grains_for_bytes(uint64_t offset, uint64_t length, uint32_t grain_shift) {
  if (length == 0) return {offset >> grain_shift, 0};
  uint64_t first = offset >> grain_shift;
  uint64_t last = (offset + length - 1) >> grain_shift;
  return {first, last - first + 1};
}

// Grains touched by the file-system blocks [first_block, first_block +
// block_count) of a file system that starts partition_offset bytes into the
// disk and uses block_size-byte blocks.
inline GrainRange grains_for_blocks(uint64_t partition_offset, uint32_t block_size,
                                    uint64_t first_block, uint64_t block_count,
                                    uint32_t grain_shift) {
  return grains_for_bytes(partition_offset + first_block * block_size, block_count * block_size,
                          grain_shift);
}

}  // namespace dsvmi

// Which number ("inode number" in the neutral model) a FAT file gets. FAT has
// no inodes; a number must survive renames and moves (which rewrite the
// directory entry elsewhere) and must fit the index's 32 bits.
//
//   1                          the root directory
//   2 .. 0x0FFFFFF6            a file or directory's first cluster: it does not
//                              change when the entry is renamed or moved
//   0x10000000 .. 0xEFFFFFFF   a file with no cluster of its own (empty, or its
//                              first cluster is invalid or owned by an earlier
//                              chain): 0x10000000 + (byte offset of its short
//                              entry in the volume) / 32
//   0xF0000000 .. 0xFFFFFFFF   the same, for entries past 0xE0000000 * 32 bytes
//                              (about 112 GiB): numbered in crawl order, so
//                              such numbers are not stable across crawls
//
// docs/fat.md says which changes renumber a file (emptying it, moving an
// empty file) and what the events then are.
#pragma once

#include <cstdint>

namespace dsvmi::fat {

inline constexpr uint64_t kRootId = 1;
inline constexpr uint64_t kLocationIdBase = 0x10000000;
inline constexpr uint64_t kLocationIdSlots = 0xE0000000;  // location ids below kOverflowIdBase
inline constexpr uint64_t kOverflowIdBase = 0xF0000000;

// The generation of a file (the index keeps it, like ext4's i_generation):
// its entry's creation date and time (2 s resolution), which a rename or
// move keeps and a new file gets anew. Same id, other generation: the id's
// cluster or entry slot was freed and taken by another file.
inline uint32_t generation_of(uint16_t create_date, uint16_t create_time) {
  return (uint32_t(create_date) << 16) | create_time;
}

// The id of an entry without a cluster of its own whose short entry sits at
// `entry_byte` bytes from the start of the volume; false if it lies beyond
// what location ids can number.
inline bool location_id(uint64_t entry_byte, uint64_t* id) {
  if (entry_byte / 32 >= kLocationIdSlots) return false;
  *id = kLocationIdBase + entry_byte / 32;
  return true;
}

}  // namespace dsvmi::fat

// On-disk ext2/3/4 constants and little-endian field loads. Offsets follow
// the kernel's struct ext4_super_block / ext4_group_desc / ext4_inode.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsvmi::ext4 {

inline uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
inline uint32_t le32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t le64(const unsigned char* p) { return le32(p) | uint64_t{le32(p + 4)} << 32; }

inline constexpr uint16_t kMagic = 0xEF53;

// Feature flags.
inline constexpr uint32_t kCompatHasJournal = 0x4;
inline constexpr uint32_t kCompatResizeInode = 0x10;
inline constexpr uint32_t kCompatSparseSuper2 = 0x200;
inline constexpr uint32_t kIncompatFiletype = 0x2;
inline constexpr uint32_t kIncompatRecover = 0x4;
inline constexpr uint32_t kIncompatJournalDev = 0x8;
inline constexpr uint32_t kIncompatMetaBg = 0x10;
inline constexpr uint32_t kIncompatExtents = 0x40;
inline constexpr uint32_t kIncompat64bit = 0x80;
inline constexpr uint32_t kIncompatMmp = 0x100;
inline constexpr uint32_t kIncompatFlexBg = 0x200;
inline constexpr uint32_t kIncompatEaInode = 0x400;
inline constexpr uint32_t kIncompatDirData = 0x1000;
inline constexpr uint32_t kIncompatCsumSeed = 0x2000;
inline constexpr uint32_t kIncompatLargedir = 0x4000;
inline constexpr uint32_t kIncompatInlineData = 0x8000;
inline constexpr uint32_t kIncompatEncrypt = 0x10000;
inline constexpr uint32_t kIncompatCasefold = 0x20000;
inline constexpr uint32_t kIncompatKnown =
    0x1 | kIncompatFiletype | kIncompatRecover | kIncompatMetaBg | kIncompatExtents | kIncompat64bit |
    kIncompatMmp | kIncompatFlexBg | kIncompatEaInode | kIncompatCsumSeed | kIncompatLargedir |
    kIncompatInlineData | kIncompatEncrypt | kIncompatCasefold;
inline constexpr uint32_t kRoCompatSparseSuper = 0x1;
inline constexpr uint32_t kRoCompatGdtCsum = 0x10;
inline constexpr uint32_t kRoCompatBigalloc = 0x200;
inline constexpr uint32_t kRoCompatMetadataCsum = 0x400;

// Group descriptor flags.
inline constexpr uint16_t kBgInodeUninit = 0x1;
inline constexpr uint16_t kBgBlockUninit = 0x2;

// Inode flags.
inline constexpr uint32_t kIndexFl = 0x1000;
inline constexpr uint32_t kExtentsFl = 0x80000;
inline constexpr uint32_t kInlineDataFl = 0x10000000;

// Reserved inode numbers.
inline constexpr uint64_t kRootIno = 2;
inline constexpr uint64_t kResizeIno = 7;

inline constexpr uint16_t kExtentMagic = 0xF30A;
inline constexpr unsigned kMaxExtentDepth = 5;

}  // namespace dsvmi::ext4

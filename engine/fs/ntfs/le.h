// Little-endian loads from unaligned on-disk bytes.
#pragma once

#include <cstdint>

namespace dsvmi::ntfs {

inline uint16_t le16(const unsigned char* p) { return uint16_t(p[0] | p[1] << 8); }
inline uint32_t le32(const unsigned char* p) { return uint32_t(le16(p)) | uint32_t(le16(p + 2)) << 16; }
inline uint64_t le64(const unsigned char* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }

// An MFT reference: record number (48 bits) and sequence number (16 bits).
inline uint64_t ref_record(uint64_t ref) { return ref & 0xFFFFFFFFFFFFull; }
inline uint16_t ref_sequence(uint64_t ref) { return uint16_t(ref >> 48); }

}  // namespace dsvmi::ntfs

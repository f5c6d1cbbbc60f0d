// Little-endian loads from unaligned on-disk bytes.
#pragma once

#include <cstdint>

namespace dsvmi::fat {

inline uint16_t le16(const unsigned char* p) { return uint16_t(p[0] | p[1] << 8); }
inline uint32_t le32(const unsigned char* p) { return uint32_t(le16(p)) | uint32_t(le16(p + 2)) << 16; }

}  // namespace dsvmi::fat

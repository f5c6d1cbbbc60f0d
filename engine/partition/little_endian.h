// Little-endian field loads from untrusted on-disk bytes (callers check
// bounds; these only avoid unaligned access and host-endianness).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dsvmi::partition_detail {

inline uint16_t le16(const std::byte* p) {
  return static_cast<uint16_t>(std::to_integer<uint16_t>(p[0]) | std::to_integer<uint16_t>(p[1]) << 8);
}
inline uint32_t le32(const std::byte* p) { return le16(p) | static_cast<uint32_t>(le16(p + 2)) << 16; }
inline uint64_t le64(const std::byte* p) { return le32(p) | static_cast<uint64_t>(le32(p + 4)) << 32; }
inline uint8_t u8(const std::byte* p) { return std::to_integer<uint8_t>(*p); }

}  // namespace dsvmi::partition_detail

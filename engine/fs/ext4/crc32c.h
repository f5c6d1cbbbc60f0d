// CRC32C (Castagnoli) as ext4's metadata_csum uses it: the raw reflected
// update with no pre/post inversion (Linux crc32c_le); callers pass ~0 or a
// seed exactly as the kernel does.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsvmi::ext4 {

uint32_t crc32c_update(uint32_t crc, const void* data, size_t length);

}  // namespace dsvmi::ext4

// NTFS times count 100 ns intervals since 1601-01-01 UTC; the neutral model
// counts nanoseconds since 1970-01-01 UTC.
#pragma once

#include <cstdint>

namespace dsvmi::ntfs {

// 1601 -> 1970: 369 years, 89 of them leap years.
inline constexpr int64_t kEpochDelta100ns = 116444736000000000;

// Exact for every time from 1677 to 2262 (int64 nanoseconds); saturates
// outside that range, so a hostile value cannot overflow.
inline int64_t ntfs_time_ns(uint64_t t) {
  const int64_t since_1970 = int64_t(t >> 1) - kEpochDelta100ns / 2;  // in 200 ns, no overflow
  constexpr int64_t kMax = INT64_MAX / 200;
  if (since_1970 > kMax) return INT64_MAX;
  if (since_1970 < -kMax) return INT64_MIN;
  return since_1970 * 200 + int64_t(t & 1) * 100;
}

}  // namespace dsvmi::ntfs

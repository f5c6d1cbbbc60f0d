// Validates a CRoaring portable serialization before CRoaring sees it.
//
// CRoaring 0.2.66's roaring_bitmap_portable_deserialize_safe checks only that
// it stays inside the buffer; unsorted arrays, wrong cardinalities or runs
// past 65535 would then break its later operations (Debian builds it with
// assertions on). The index is untrusted, so the reader checks the format
// (github.com/RoaringBitmap/RoaringFormatSpec) itself.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dsvmi/status.h"

namespace dsvmi {

// OK iff `data` is exactly one well-formed portable bitmap whose values are
// all below `limit` (when limit <= 2^32).
Status check_roaring_portable(const uint8_t* data, size_t size, uint64_t limit);

}  // namespace dsvmi

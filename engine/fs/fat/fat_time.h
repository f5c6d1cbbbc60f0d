// FAT timestamps: a date (years since 1980, month, day) and a time (hours,
// minutes, 2-second units) in the guest's local time, with no time zone.
// dsvmi reads them as UTC wall-clock fields, which is what Linux shows with
// its default time-zone offset of 0 (docs/fat.md).
#pragma once

#include <cstdint>

namespace dsvmi::fat {

// Nanoseconds since the Unix epoch of date/time read as UTC, plus
// `centiseconds` (0..199, units of 10 ms; the creation time's fine part).
// Out-of-range fields are computed as Linux does (month and day 0 count as
// 1, the rest is arithmetic), so every input gives one defined answer.
int64_t fat_time_ns(uint16_t date, uint16_t time, uint8_t centiseconds = 0);

}  // namespace dsvmi::fat

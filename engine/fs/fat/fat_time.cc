#include "fat_time.h"

namespace dsvmi::fat {
namespace {

// Days from 1970-01-01 to year/month/day (proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = unsigned(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + int64_t(doe) - 719468;
}

}  // namespace

int64_t fat_time_ns(uint16_t date, uint16_t time, uint8_t centiseconds) {
  const int64_t year = 1980 + (date >> 9);
  unsigned month = (date >> 5) & 0x0F;
  if (month == 0) month = 1;
  // Months 13..15: Linux's table lookup would read past its end; dsvmi
  // carries them into the next year instead, still one defined answer.
  const int64_t y = year + (month - 1) / 12;
  month = (month - 1) % 12 + 1;
  unsigned day = date & 0x1F;
  if (day == 0) day = 1;
  const int64_t days = days_from_civil(y, month, 1) + (day - 1);
  const int64_t secs = days * 86400 + int64_t(time >> 11) * 3600 + int64_t((time >> 5) & 0x3F) * 60 +
                       int64_t(time & 0x1F) * 2;
  return secs * 1000000000 + int64_t(centiseconds) * 10000000;
}

}  // namespace dsvmi::fat

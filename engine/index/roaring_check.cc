#include "roaring_check.h"

#include <bit>
#include <string>
#include <vector>

namespace dsvmi {
namespace {

constexpr uint32_t kCookieNoRuns = 12346;
constexpr uint32_t kCookieRuns = 12347;
constexpr uint32_t kNoOffsetThreshold = 4;
constexpr uint32_t kMaxArray = 4096;

class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool u16(uint32_t* v) {
    if (n_ - pos_ < 2) return false;
    *v = uint32_t(p_[pos_]) | uint32_t(p_[pos_ + 1]) << 8;
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t* v) {
    uint32_t lo = 0, hi = 0;
    if (!u16(&lo) || !u16(&hi)) return false;
    *v = lo | hi << 16;
    return true;
  }
  bool skip(size_t k) {
    if (n_ - pos_ < k) return false;
    pos_ += k;
    return true;
  }
  const uint8_t* here() const { return p_ + pos_; }
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

Status bad(const std::string& what) { return Status::error("kind bitmap: " + what); }

}  // namespace

Status check_roaring_portable(const uint8_t* data, size_t size, uint64_t limit) {
  Cursor c(data, size);
  uint32_t cookie, count;
  std::vector<uint8_t> run_flags;
  if (!c.u32(&cookie)) return bad("truncated header");
  bool has_runs = false;
  if ((cookie & 0xFFFF) == kCookieRuns) {
    has_runs = true;
    count = (cookie >> 16) + 1;
    const size_t flag_bytes = (count + 7) / 8;
    if (c.left() < flag_bytes) return bad("truncated run flags");
    run_flags.assign(c.here(), c.here() + flag_bytes);
    c.skip(flag_bytes);
  } else if (cookie == kCookieNoRuns) {
    if (!c.u32(&count)) return bad("truncated header");
    if (count > 65536) return bad("more than 65536 containers");
  } else {
    return bad("not a portable Roaring bitmap (bad cookie)");
  }
  if (c.left() / 4 < count) return bad("truncated container headers");
  std::vector<uint32_t> keys(count), cards(count);
  for (uint32_t i = 0; i < count; ++i) {
    c.u16(&keys[i]);
    c.u16(&cards[i]);
    cards[i] += 1;
    if (i > 0 && keys[i] <= keys[i - 1]) return bad("container keys not ascending");
  }
  if (count > 0 && limit <= (uint64_t(1) << 32) && (uint64_t(keys[count - 1]) << 16) >= limit)
    return bad("values beyond the file system");
  if (!has_runs || count >= kNoOffsetThreshold) {
    if (!c.skip(size_t(count) * 4)) return bad("truncated offsets");
  }
  uint64_t last_value_seen = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const bool is_run = has_runs && (run_flags[i / 8] >> (i % 8) & 1);
    uint32_t max_low = 0;
    if (is_run) {
      uint32_t runs;
      if (!c.u16(&runs)) return bad("truncated run container");
      if (runs == 0) return bad("empty run container");
      if (c.left() / 4 < runs) return bad("truncated run container");
      uint32_t next_free = 0, card = 0;
      for (uint32_t r = 0; r < runs; ++r) {
        uint32_t start = 0, len = 0;
        c.u16(&start);
        c.u16(&len);
        if (r > 0 && start < next_free) return bad("run container runs overlap or are unsorted");
        if (start + len > 0xFFFF) return bad("run past the end of its container");
        next_free = start + len + 1;
        card += len + 1;
        max_low = start + len;
      }
      (void)card;  // the stored cardinality of run containers is advisory in the spec
    } else if (cards[i] > kMaxArray) {
      if (c.left() < 8192) return bad("truncated bitset container");
      uint32_t pop = 0;
      const uint8_t* p = c.here();
      for (int w = 0; w < 8192; ++w) pop += std::popcount(unsigned(p[w]));
      if (pop != cards[i]) return bad("bitset cardinality mismatch");
      for (int w = 8191; w >= 0; --w) {
        if (p[w]) {
          max_low = uint32_t(w) * 8 + 7 - uint32_t(std::countl_zero(uint8_t(p[w])));
          break;
        }
      }
      c.skip(8192);
    } else {
      if (c.left() / 2 < cards[i]) return bad("truncated array container");
      uint32_t prev = 0;
      for (uint32_t k = 0; k < cards[i]; ++k) {
        uint32_t v = 0;
        c.u16(&v);
        if (k > 0 && v <= prev) return bad("array container not strictly ascending");
        prev = v;
      }
      max_low = prev;
    }
    last_value_seen = uint64_t(keys[i]) << 16 | max_low;
  }
  if (c.left() != 0) return bad("trailing bytes");
  if (count > 0 && limit <= (uint64_t(1) << 32) && last_value_seen >= limit)
    return bad("values beyond the file system");
  return Status::ok();
}

}  // namespace dsvmi

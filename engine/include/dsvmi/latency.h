// A fixed-size latency histogram (microseconds): log-linear buckets, no
// allocation, O(1) record, percentiles accurate to 1/16 of a power of two
// (6.25 %), exact count and max. Used for the event latency of a live engine
// (docs/events.md, "Engine records").
#pragma once

#include <array>
#include <cstdint>

namespace dsvmi {

class LatencyHistogram {
 public:
  // Values 0..15 have a bucket each; above, each power of two [2^e, 2^(e+1))
  // is cut into 16 equal sub-buckets, up to 2^63.
  static constexpr int kSubBits = 4;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = kSub + (64 - kSubBits) * kSub;

  void record(uint64_t v) {
    buckets_[bucket_of(v)]++;
    count_++;
    if (v > max_) max_ = v;
  }
  void clear() { *this = LatencyHistogram(); }
  void merge(const LatencyHistogram& o) {
    for (int i = 0; i < kBuckets; i++) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    if (o.max_ > max_) max_ = o.max_;
  }
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }

  // The smallest recorded value v such that at least p (0..1] of the values
  // are <= v, reported as the upper bound of v's bucket (never above max()).
  // 0 when empty.
  uint64_t percentile(double p) const {
    if (count_ == 0) return 0;
    if (p <= 0) p = 0;
    if (p > 1) p = 1;
    // rank = ceil(p * count), at least 1.
    uint64_t rank = static_cast<uint64_t>(p * static_cast<double>(count_));
    if (static_cast<double>(rank) < p * static_cast<double>(count_)) rank++;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
      seen += buckets_[i];
      if (seen >= rank) {
        uint64_t hi = bucket_upper(i);
        return hi < max_ ? hi : max_;
      }
    }
    return max_;
  }

  static int bucket_of(uint64_t v) {
    if (v < kSub) return static_cast<int>(v);
    const int e = 63 - __builtin_clzll(v);  // >= kSubBits
    const int sub = static_cast<int>((v >> (e - kSubBits)) & (kSub - 1));
    return kSub + (e - kSubBits) * kSub + sub;
  }
  // Largest value that falls into bucket i.
  static uint64_t bucket_upper(int i) {
    if (i < kSub) return static_cast<uint64_t>(i);
    const int e = (i - kSub) / kSub + kSubBits;
    const uint64_t sub = static_cast<uint64_t>((i - kSub) % kSub);
    const uint64_t width = uint64_t{1} << (e - kSubBits);
    const uint64_t lo = (uint64_t{1} << e) + sub * width;
    return lo + (width - 1);
  }

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace dsvmi

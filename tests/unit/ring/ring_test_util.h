// Shared helpers for the ring tests: temporary ring paths and a reference
// model of the frame stream ("what frame number `seq` must look like"),
// computed independently of the ring from a hash of seq.
#pragma once

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dsvmi/ring.h"

namespace dsvmi::test {

inline uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// memcmp that accepts empty (possibly null) ranges; 0 when equal.
inline int BytesDiffer(const uint8_t* a, const uint8_t* b, size_t n) { return n ? std::memcmp(a, b, n) : 0; }

// A ring file in /dev/shm that is removed when the test ends.
class TempRingPath {
 public:
  TempRingPath() {
    static std::atomic<int> counter{0};
    path_ = "/dev/shm/dsvmi-ring-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    unlink(path_.c_str());
  }
  ~TempRingPath() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The reference model: kind, offset, length and payload of frame `seq`.
// Mostly small writes (so counts reach millions), some large, a few up to
// max_large bytes, and some non-write kinds.
struct ModelFrame {
  int kind;
  uint64_t offset;
  uint64_t length;
};

inline ModelFrame Model(uint64_t seq, uint64_t max_large) {
  const uint64_t h = SplitMix(seq * 0x2545f4914f6cdd1dull + 1);
  ModelFrame m;
  const unsigned pick = static_cast<unsigned>(h % 1000);
  const uint64_t r = SplitMix(h);
  if (pick < 40) {
    m.kind = DSVMI_FRAME_WRITE_ZEROES;
    m.length = (r % 64 + 1) * 4096;
  } else if (pick < 70) {
    m.kind = DSVMI_FRAME_DISCARD;
    m.length = (r % 1024 + 1) * 4096;
  } else if (pick < 80) {
    m.kind = DSVMI_FRAME_FLUSH;
    m.length = 0;
  } else {
    m.kind = DSVMI_FRAME_WRITE;
    const unsigned size_class = static_cast<unsigned>((r >> 20) % 10000);
    if (size_class < 2) {
      m.length = r % (max_large + 1);  // up to max_large (2 MiB)
    } else if (size_class < 50) {
      m.length = r % (64 * 1024 + 1);
    } else {
      m.length = r % 513;
    }
  }
  m.offset = m.kind == DSVMI_FRAME_FLUSH ? 0 : (SplitMix(r) % (1ull << 40)) & ~uint64_t{511};
  return m;
}

// Payload byte i of frame seq.
inline void ModelPayload(uint64_t seq, uint8_t* out, size_t n) {
  const uint64_t base = SplitMix(seq ^ 0x5deece66dull);
  size_t i = 0;
  for (uint64_t w = 0; i < n; w++) {
    uint64_t v = SplitMix(base + w);
    size_t c = n - i < 8 ? n - i : 8;
    std::memcpy(out + i, &v, c);
    i += c;
  }
}

// Scatters `payload` into 1..max_pieces iovecs over a private buffer, with a
// random iov_skip prefix of garbage and a random garbage tail.
struct Scatter {
  std::vector<uint8_t> buf;
  std::vector<struct iovec> iov;
  size_t skip = 0;

  void Build(const uint8_t* payload, size_t n, std::mt19937_64& rng, int max_pieces = 64) {
    const uint64_t r = rng();
    skip = r % 100;
    const size_t tail = (r >> 8) % 50;
    // Garbage around the payload: a skip handled wrongly shows up as 0xee/0x11
    // bytes in the payload and fails the bit-exact comparison.
    buf.resize(skip + n + tail);
    std::memset(buf.data(), 0xee, skip);
    if (n) std::memcpy(buf.data() + skip, payload, n);
    std::memset(buf.data() + skip + n, 0x11, tail);
    // 1..max_pieces pieces (zero-length pieces included); most lists short.
    const unsigned limit = ((r >> 16) % 8 == 0) ? static_cast<unsigned>(max_pieces) : 4u;
    const int pieces = 1 + static_cast<int>((r >> 24) % limit);
    cuts_.clear();
    for (int i = 0; i < pieces - 1; i++) cuts_.push_back(buf.empty() ? 0 : rng() % (buf.size() + 1));
    cuts_.push_back(0);
    cuts_.push_back(buf.size());
    std::sort(cuts_.begin(), cuts_.end());
    iov.clear();
    for (size_t i = 0; i + 1 < cuts_.size(); i++) {
      iov.push_back({buf.data() + cuts_[i], cuts_[i + 1] - cuts_[i]});
    }
  }

 private:
  std::vector<size_t> cuts_;
};

}  // namespace dsvmi::test

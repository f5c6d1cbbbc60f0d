// Helpers shared by the gate tests: a scratch gate path on tmpfs and a
// reference model of "is any grain of this byte range set".
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dsvmi::test {

// A unique path in /dev/shm, removed when the object dies.
class ScratchPath {
 public:
  explicit ScratchPath(const std::string& tag) {
    static int counter = 0;
    path_ = "/dev/shm/dsvmi-gate-test-" + std::to_string(getpid()) + "-" + tag + "-" +
            std::to_string(counter++);
    unlink(path_.c_str());
  }
  ~ScratchPath() { unlink(path_.c_str()); }
  const std::string& str() const { return path_; }
  const char* c_str() const { return path_.c_str(); }

 private:
  std::string path_;
};

// The gate's documented answer for a byte range, computed from a plain
// vector of grains: length 0 means one byte; a range reaching past the disk
// (or wrapping) passes; otherwise pass iff any touched grain is set.
inline bool reference_should_pass(const std::vector<bool>& grains, uint64_t disk_size,
                                  uint32_t grain_shift, uint64_t offset, uint64_t length) {
  if (length == 0) length = 1;
  uint64_t end = offset + length;
  if (end < offset || end > disk_size) return true;
  for (uint64_t g = offset >> grain_shift; g <= (end - 1) >> grain_shift; g++) {
    if (grains[g]) return true;
  }
  return false;
}

}  // namespace dsvmi::test

// MemoryReader: a DiskReader over bytes already in memory. For fuzzers and
// tests that hand a parser a disk image without touching the file system.
#pragma once

#include <cstring>
#include <span>
#include <string>

#include "dsvmi/disk_reader.h"

namespace dsvmi {

class MemoryReader final : public DiskReader {
 public:
  explicit MemoryReader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  Status read(uint64_t offset, std::span<std::byte> out) override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset) {
      return Status::error("memory: read of " + std::to_string(out.size()) + " bytes at offset " +
                           std::to_string(offset) + " is past the end (" +
                           std::to_string(bytes_.size()) + " bytes)");
    }
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return Status::ok();
  }
  std::string describe() const override { return "memory"; }

 private:
  std::span<const std::byte> bytes_;
};

}  // namespace dsvmi

// UringReader: a raw image file or block device read through io_uring.
//
// read_batch() keeps up to queue_depth reads in flight. With O_DIRECT every
// read goes through page-aligned bounce buffers owned by the reader (allocated
// once), because callers' spans have arbitrary offsets and lengths.
// Not thread-safe: one reader per thread.
#pragma once

#include <liburing.h>

#include <memory>
#include <string>

#include "dsvmi/disk_reader.h"

namespace dsvmi {

class UringReader final : public DiskReader {
 public:
  static std::unique_ptr<DiskReader> open(const std::string& path, const DiskReaderOptions& options,
                                          Status* error);
  ~UringReader() override;

  uint64_t size() const override { return size_; }
  Status read(uint64_t offset, std::span<std::byte> out) override;
  Status read_batch(std::span<const ReadRequest> requests) override;
  std::string describe() const override { return path_; }

 private:
  UringReader() = default;

  // One read in flight: a piece of one request.
  struct Slot {
    std::byte* dest = nullptr;     // where the caller wants the bytes
    uint64_t offset = 0;           // disk offset of dest[0]
    uint32_t length = 0;           // bytes wanted
    uint32_t done = 0;             // bytes already delivered
    std::byte* bounce = nullptr;   // O_DIRECT only
  };
  bool submit_slot(unsigned slot_index);
  Status complete_slot(unsigned slot_index, int result, bool* finished);

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool direct_ = false;
  unsigned depth_ = 0;
  bool ring_ready_ = false;
  io_uring ring_{};
  std::unique_ptr<Slot[]> slots_;
  std::byte* bounce_area_ = nullptr;  // depth_ * kBounceBytes, 4 KiB aligned
};

}  // namespace dsvmi

// DiskReader: random read access to a virtual disk, whatever holds it.
//
// The crawler and the engine's read-back path (blocks whose writes the gate
// dropped) read through this interface only. Implementations: a raw image or
// block device through liburing (batched, queue depth > 1, optional O_DIRECT),
// and any image QEMU can open through an NBD export (libnbd).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dsvmi/status.h"

namespace dsvmi {

struct ReadRequest {
  uint64_t offset;           // byte offset on the disk
  std::span<std::byte> out;  // exactly out.size() bytes are read
};

class DiskReader {
 public:
  virtual ~DiskReader() = default;

  // Size of the disk in bytes.
  virtual uint64_t size() const = 0;

  // Reads exactly out.size() bytes at offset. A range past the end of the
  // disk or a short read is an error, never a partial success.
  virtual Status read(uint64_t offset, std::span<std::byte> out) = 0;

  // Reads all requests, possibly concurrently (the liburing reader keeps
  // several in flight). Fails if any request fails.
  virtual Status read_batch(std::span<const ReadRequest> requests);

  // Human-readable origin, e.g. "disk.img" or "nbd://unix:/run/x.sock".
  virtual std::string describe() const = 0;
};

struct DiskReaderOptions {
  bool direct_io = false;     // O_DIRECT for raw files (cold-cache crawls)
  unsigned queue_depth = 32;  // liburing submissions in flight
};

// Opens "path/to/image.raw", "/dev/sdX" or "nbd://..." / "nbd+unix://..."
// (any URI libnbd accepts). On failure returns nullptr and sets *error.
std::unique_ptr<DiskReader> open_disk(const std::string& spec, const DiskReaderOptions& options,
                                      Status* error);

}  // namespace dsvmi

// NbdReader: any image QEMU can open (qcow2, backing chains, a running VM's
// disk), exported over NBD by qemu-nbd, qemu-storage-daemon or QEMU's own NBD
// server, read with libnbd. read_batch() keeps several commands in flight.
#pragma once

#include <memory>
#include <string>

#include "dsvmi/disk_reader.h"

struct nbd_handle;

namespace dsvmi {

class NbdReader final : public DiskReader {
 public:
  static std::unique_ptr<DiskReader> open(const std::string& uri, const DiskReaderOptions& options,
                                          Status* error);
  ~NbdReader() override;

  uint64_t size() const override { return size_; }
  Status read(uint64_t offset, std::span<std::byte> out) override;
  Status read_batch(std::span<const ReadRequest> requests) override;
  std::string describe() const override { return uri_; }

 private:
  NbdReader() = default;
  std::string uri_;
  nbd_handle* nbd_ = nullptr;
  uint64_t size_ = 0;
  unsigned depth_ = 1;
};

}  // namespace dsvmi

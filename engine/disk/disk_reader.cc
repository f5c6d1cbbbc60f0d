// The default DiskReader::read_batch: one request after the other. Readers
// that can keep several reads in flight (liburing, libnbd) override it.
#include "dsvmi/disk_reader.h"

namespace dsvmi {

Status DiskReader::read_batch(std::span<const ReadRequest> requests) {
  for (const ReadRequest& r : requests) {
    Status s = read(r.offset, r.out);
    if (!s) return s;
  }
  return Status::ok();
}

}  // namespace dsvmi

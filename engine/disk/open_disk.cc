// open_disk: the one entry point that picks a DiskReader for a spec.
#include "dsvmi/disk_reader.h"
#include "nbd_reader.h"
#include "uring_reader.h"

namespace dsvmi {

std::unique_ptr<DiskReader> open_disk(const std::string& spec, const DiskReaderOptions& options,
                                      Status* error) {
  Status ignored;
  Status* err = error ? error : &ignored;
  if (spec.rfind("nbd://", 0) == 0 || spec.rfind("nbd+unix://", 0) == 0 ||
      spec.rfind("nbds://", 0) == 0 || spec.rfind("nbds+unix://", 0) == 0 ||
      spec.rfind("nbd+vsock://", 0) == 0) {
    return NbdReader::open(spec, options, err);
  }
  return UringReader::open(spec, options, err);
}

}  // namespace dsvmi

// libFuzzer: the boot sector decoder (seeded with mkntfs's boot sector).
#include <cstddef>
#include <cstdint>

#include "../../../engine/fs/ntfs/boot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::ntfs::Geometry g;
  if (dsvmi::ntfs::decode_boot(data, size, uint64_t(1) << 40, &g)) {
    // A decoded geometry is consistent: these must hold for any input.
    if (g.cluster_size == 0 || g.record_size < 512 || g.mft_lcn >= g.total_clusters) __builtin_trap();
  }
  return 0;
}

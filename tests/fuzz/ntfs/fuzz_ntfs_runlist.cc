// libFuzzer: runlist decoding and the overlap/loop check (seeded with File
// Records, whose runlists sit somewhere inside).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../../engine/fs/ntfs/runlist.h"

using namespace dsvmi::ntfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::vector<Run> runs;
  const uint64_t start = data[0];
  (void)decode_runlist(data + 1, size - 1, start, uint64_t(1) << 24, 4096, &runs);
  (void)check_runs(&runs);
  uint64_t mapped = mapped_clusters(runs);
  for (size_t i = 1; i < runs.size(); ++i)
    if (runs[i].vcn < runs[i - 1].vcn + runs[i - 1].length) __builtin_trap();  // check_runs leaves no overlap
  (void)mapped;
  return 0;
}

// libFuzzer: the NTFS crawler on a small arbitrary volume (seeded with a
// mkntfs volume, see make_seeds.sh). The sink reads every field it is given
// so sanitizers see any use of bad memory
// (../common/touching_sink.h).
#include <cstddef>
#include <cstdint>

#include "../common/touching_sink.h"
#include "dsvmi/memory_reader.h"
#include "dsvmi/ntfs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::MemoryReader disk(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  dsvmi::fuzzing::TouchingSink sink;
  dsvmi::NtfsCrawlOptions options;
  options.batch_bytes = 16 << 10;
  options.max_problems = 100;
  (void)dsvmi::crawl_ntfs(disk, 0, size, sink, options);
  return 0;
}

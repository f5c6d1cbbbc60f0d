// libFuzzer: the ext4 crawler on a small arbitrary image (seeded with valid
// mkfs.ext4 images, see make_seeds.sh). The sink reads every field it is given
// so sanitizers see any use of bad memory.
#include <cstddef>
#include <cstdint>

#include "../common/touching_sink.h"
#include "dsvmi/ext4.h"
#include "dsvmi/memory_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::MemoryReader disk(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  dsvmi::fuzzing::TouchingSink sink;
  dsvmi::Ext4CrawlOptions options;
  options.batch_bytes = 16 << 10;
  options.max_problems = 100;
  (void)dsvmi::crawl_ext4(disk, 0, size, sink, options);
  return 0;
}

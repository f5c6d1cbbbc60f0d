// libFuzzer: the partition-table reader and file-system probe on arbitrary
// bytes. Any crash, hang, sanitizer report or runaway allocation is a bug.
#include <cstddef>
#include <cstdint>

#include "dsvmi/memory_reader.h"
#include "dsvmi/partition.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::MemoryReader disk(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  dsvmi::PartitionTable table;
  dsvmi::Status s = dsvmi::read_partition_table(disk, &table);
  if (s) {
    size_t total = 0;
    for (const auto& p : table.partitions) total += p.name.size() + p.filesystem.size();
    for (const auto& w : table.warnings) total += w.size();
    (void)total;
  }
  return 0;
}

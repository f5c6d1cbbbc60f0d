// libFuzzer: directory entries and VFAT long-name assembly on arbitrary bytes.
#include <cstddef>
#include <cstdint>

#include "directory.h"
#include "names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t sum = 0;
  dsvmi::fat::DirectoryCallbacks cb;
  cb.entry = [&](const dsvmi::fat::ParsedEntry& e) {
    std::string name = e.name;
    dsvmi::fat::sanitize_name(&name);
    sum += name.size() + e.short_name.size() + e.first_cluster + e.size + e.offset + e.slots;
    if (e.offset + 32 > size) __builtin_trap();
  };
  cb.label = [&](const std::string& l) { sum += l.size(); };
  cb.problem = [&](size_t off, const std::string& what) { sum += off + what.size(); };
  dsvmi::fat::DirectoryCounts counts;
  dsvmi::fat::parse_directory(data, size, size % 2 == 0, cb, &counts);
  if (counts.deleted > size / 32 || counts.orphan_slots > size / 32) __builtin_trap();
  return 0;
}

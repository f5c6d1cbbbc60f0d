// libFuzzer: $ATTRIBUTE_LIST values.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../../engine/fs/ntfs/attributes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<dsvmi::ntfs::AttributeListEntry> entries;
  (void)dsvmi::ntfs::decode_attribute_list(data, size, 10000, &entries);
  return 0;
}

// libFuzzer: $I30 index blocks (fixups, then the node walk) and, on the
// same bytes, an $INDEX_ROOT value (seeded with mkntfs INDX blocks).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../../engine/fs/ntfs/index_node.h"
#include "../../../engine/fs/ntfs/record.h"

using namespace dsvmi::ntfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t names = 0;
  auto entry = [&](uint64_t, const FileName& key) { names += key.name.size(); };
  IndexRootInfo root;
  if (decode_index_root(data, size, &root)) (void)walk_index_node(data + root.node_offset, size - root.node_offset, entry);
  const size_t n = size / kFixupStride * kFixupStride;
  if (n == 0 || n > 65536) return 0;
  std::vector<unsigned char> block(data, data + n);
  if (apply_fixups(block.data(), block.size(), "INDX") == FixupResult::Ok) (void)walk_index_block(block.data(), n, entry);
  return 0;
}

// $I30 directory indexes: the entries of one B+ tree node, either inside the
// resident $INDEX_ROOT or in an INDX block of $INDEX_ALLOCATION (whose
// fixups the caller applies first). Every entry is reported, leaf or not:
// together the nodes in use hold each of a directory's names once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "attributes.h"
#include "dsvmi/status.h"

namespace dsvmi::ntfs {

struct IndexRootInfo {
  uint32_t indexed_type = 0;  // kAttrFileName for $I30
  uint32_t block_size = 0;    // of the INDX blocks
  size_t node_offset = 0;     // of the node header within the value
};

// The header of an $INDEX_ROOT value.
Status decode_index_root(const unsigned char* v, size_t n, IndexRootInfo* out);

// Walks the entries of the node whose header is at p[0..n) (n bytes of the
// node available). `entry` gets the child's reference and decoded key.
Status walk_index_node(const unsigned char* p, size_t n,
                       const std::function<void(uint64_t ref, const FileName& key)>& entry);

// The node of an INDX block of `size` bytes (fixed up) at p.
Status walk_index_block(const unsigned char* p, size_t size,
                        const std::function<void(uint64_t ref, const FileName& key)>& entry);

}  // namespace dsvmi::ntfs

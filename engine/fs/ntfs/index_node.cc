// $I30 index node parsing (docs/ntfs.md, "Directories").
#include "index_node.h"

#include <string>

#include "le.h"
#include "record.h"

namespace dsvmi::ntfs {
namespace {

constexpr uint32_t kEntryHasSubnode = 0x01;
constexpr uint32_t kEntryLast = 0x02;
constexpr size_t kIndxNodeHeader = 0x18;  // INDX: magic, USA, LSN, VCN, then the node header

}  // namespace

Status decode_index_root(const unsigned char* v, size_t n, IndexRootInfo* out) {
  if (n < 32) return Status::error("$INDEX_ROOT shorter than its headers");
  out->indexed_type = le32(v);
  out->block_size = le32(v + 8);
  out->node_offset = 16;
  return Status::ok();
}

Status walk_index_node(const unsigned char* p, size_t n,
                       const std::function<void(uint64_t ref, const FileName& key)>& entry) {
  if (n < 16) return Status::error("index node header is cut off");
  const uint32_t entries_offset = le32(p), index_length = le32(p + 4);
  if (entries_offset < 16 || entries_offset > index_length || index_length > n)
    return Status::error("index node: entries at " + std::to_string(entries_offset) + ", length " +
                         std::to_string(index_length) + " of " + std::to_string(n) + " bytes");
  size_t at = entries_offset;
  // Each entry takes at least 16 bytes: the walk ends within n / 16 steps.
  while (at + 16 <= index_length) {
    const unsigned char* e = p + at;
    const uint64_t ref = le64(e);
    const uint32_t length = le16(e + 8), key_length = le16(e + 10), flags = le32(e + 12);
    if (length < 16 || length % 8 != 0 || length > index_length - at)
      return Status::error("index entry at byte " + std::to_string(at) + " has length " + std::to_string(length));
    if (flags & kEntryLast) return Status::ok();
    const size_t tail = (flags & kEntryHasSubnode) ? 8 : 0;
    if (length < 16 + tail || key_length > length - 16 - tail)
      return Status::error("index entry at byte " + std::to_string(at) + " has a key outside it");
    FileName key;
    if (!decode_file_name(e + 16, key_length, &key))
      return Status::error("index entry at byte " + std::to_string(at) + " has a malformed $FILE_NAME key");
    entry(ref, key);
    at += length;
  }
  return Status::error("index node has no last entry");
}

Status walk_index_block(const unsigned char* p, size_t size,
                        const std::function<void(uint64_t ref, const FileName& key)>& entry) {
  if (size < kIndxNodeHeader + 16) return Status::error("INDX block too small");
  return walk_index_node(p + kIndxNodeHeader, size - kIndxNodeHeader, entry);
}

}  // namespace dsvmi::ntfs

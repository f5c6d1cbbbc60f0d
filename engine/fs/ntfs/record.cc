// File Record parsing (docs/ntfs.md, "File Records").
#include "record.h"

#include <cstring>

#include "le.h"
#include "names.h"

namespace dsvmi::ntfs {
namespace {

// An attribute with a resident header is 24 bytes, a non-resident one 64
// (72 with a compressed size); both are 8-byte aligned.
constexpr uint32_t kResidentHeader = 24;
constexpr uint32_t kNonResidentHeader = 64;

}  // namespace

const char* fixup_result_text(FixupResult r) {
  switch (r) {
    case FixupResult::Ok: return "ok";
    case FixupResult::Empty: return "never written";
    case FixupResult::BadMagic: return "bad magic";
    case FixupResult::BadArray: return "malformed update sequence array";
    case FixupResult::Torn: return "torn write (update sequence mismatch)";
  }
  return "?";
}

FixupResult apply_fixups(unsigned char* p, size_t size, const char* magic) {
  if (size < kFixupStride || size % kFixupStride != 0) return FixupResult::BadArray;
  if (std::memcmp(p, magic, 4) != 0) {
    static const unsigned char zero[4] = {0, 0, 0, 0};
    return std::memcmp(p, zero, 4) == 0 ? FixupResult::Empty : FixupResult::BadMagic;
  }
  const uint32_t usa_offset = le16(p + 4), usa_count = le16(p + 6);
  const size_t sectors = size / kFixupStride;
  if (usa_count != sectors + 1 || usa_offset < 8 || usa_offset % 2 != 0 ||
      uint64_t(usa_offset) + 2 * uint64_t(usa_count) > kFixupStride - 2)
    return FixupResult::BadArray;
  const unsigned char* usa = p + usa_offset;
  for (size_t i = 0; i < sectors; ++i) {
    const unsigned char* end = p + (i + 1) * kFixupStride - 2;
    if (end[0] != usa[0] || end[1] != usa[1]) return FixupResult::Torn;
  }
  for (size_t i = 0; i < sectors; ++i) {
    unsigned char* end = p + (i + 1) * kFixupStride - 2;
    end[0] = usa[2 + 2 * i];
    end[1] = usa[3 + 2 * i];
  }
  return FixupResult::Ok;
}

Status parse_attributes(const unsigned char* p, size_t n, std::vector<AttrView>* attrs) {
  size_t at = 0;
  // Each attribute takes at least 24 bytes, so the walk ends within n / 24 steps.
  while (at + 4 <= n) {
    const unsigned char* a = p + at;
    AttrView v;
    v.type = le32(a);
    if (v.type == kAttrEnd) return Status::ok();
    if (at + 16 > n) return Status::error("attribute header at byte " + std::to_string(at) + " is cut off");
    const uint32_t length = le32(a + 4);
    if (length < kResidentHeader || length % 8 != 0 || length > n - at)
      return Status::error("attribute of type " + std::to_string(v.type) + " at byte " + std::to_string(at) +
                           " has length " + std::to_string(length));
    v.non_resident = a[8] != 0;
    const uint32_t name_length = a[9], name_offset = le16(a + 10);
    v.flags = le16(a + 12);
    v.id = le16(a + 14);
    if (name_length > 0) {
      if (uint64_t(name_offset) + 2 * uint64_t(name_length) > length)
        return Status::error("attribute name at byte " + std::to_string(at) + " lies outside the attribute");
      v.name = utf16_to_utf8(a + name_offset, name_length);
    }
    if (!v.non_resident) {
      v.value_length = le32(a + 16);
      const uint32_t value_offset = le16(a + 20);
      if (value_offset > length || v.value_length > length - value_offset)
        return Status::error("resident value of attribute at byte " + std::to_string(at) +
                             " lies outside the attribute");
      v.value = a + value_offset;
    } else {
      if (length < kNonResidentHeader)
        return Status::error("non-resident attribute at byte " + std::to_string(at) + " is too short");
      v.start_vcn = le64(a + 16);
      v.last_vcn = le64(a + 24);
      const uint32_t runlist_offset = le16(a + 32);
      v.compression_unit = le16(a + 34);
      v.allocated_size = le64(a + 40);
      v.data_size = le64(a + 48);
      v.initialized_size = le64(a + 56);
      if (runlist_offset < kNonResidentHeader || runlist_offset > length)
        return Status::error("runlist of attribute at byte " + std::to_string(at) + " lies outside the attribute");
      v.runlist = a + runlist_offset;
      v.runlist_length = length - runlist_offset;
    }
    attrs->push_back(std::move(v));
    at += length;
  }
  return Status::error("attribute list of the record has no end marker");
}

Status parse_record(const unsigned char* p, size_t size, RecordHeader* h, std::vector<AttrView>* attrs) {
  if (size < 48) return Status::error("record shorter than its header");
  h->sequence = le16(p + 16);
  h->link_count = le16(p + 18);
  const uint32_t attrs_offset = le16(p + 20);
  h->flags = le16(p + 22);
  h->bytes_in_use = le32(p + 24);
  const uint32_t allocated = le32(p + 28);
  h->base_ref = le64(p + 32);
  if (allocated != size)
    return Status::error("record claims " + std::to_string(allocated) + " allocated bytes, not " +
                         std::to_string(size));
  if (h->bytes_in_use > size || attrs_offset < 42 || attrs_offset % 8 != 0 || attrs_offset >= h->bytes_in_use)
    return Status::error("record header: " + std::to_string(h->bytes_in_use) + " bytes in use, attributes at " +
                         std::to_string(attrs_offset));
  return parse_attributes(p + attrs_offset, h->bytes_in_use - attrs_offset, attrs);
}

}  // namespace dsvmi::ntfs

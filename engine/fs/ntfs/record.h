// File Records (the MFT's entries) and index blocks: the update sequence
// array fixups that detect torn multi-sector writes, the record header, and
// the attributes of one record as bounded views into its bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi::ntfs {

// Attribute types this crawler reads.
enum AttrType : uint32_t {
  kAttrStandardInformation = 0x10,
  kAttrAttributeList = 0x20,
  kAttrFileName = 0x30,
  kAttrVolumeName = 0x60,
  kAttrData = 0x80,
  kAttrIndexRoot = 0x90,
  kAttrIndexAllocation = 0xA0,
  kAttrBitmap = 0xB0,
  kAttrReparsePoint = 0xC0,
  kAttrEnd = 0xFFFFFFFF,
};

// Attribute header flags.
inline constexpr uint16_t kAttrFlagCompressed = 0x00FF;  // the compression-method bits
inline constexpr uint16_t kAttrFlagEncrypted = 0x4000;
inline constexpr uint16_t kAttrFlagSparse = 0x8000;

// File Record header flags.
inline constexpr uint16_t kRecordInUse = 0x0001;
inline constexpr uint16_t kRecordDirectory = 0x0002;

// The stride of the update sequence array: always 512 bytes, whatever the
// sector size (the Linux driver's NTFS_BLOCK_SIZE).
inline constexpr uint32_t kFixupStride = 512;

enum class FixupResult { Ok, Empty, BadMagic, BadArray, Torn };

// Checks the update sequence array of the `size`-byte structure at `p`
// ("FILE" or "INDX" `magic`) and restores the sector-end bytes it saved.
// Torn: a sector does not end with the sequence number, so the write that
// produced these bytes did not complete: the structure must not be trusted.
// Empty: all-zero magic (a never-written record). `p` is changed only on Ok.
FixupResult apply_fixups(unsigned char* p, size_t size, const char* magic);
const char* fixup_result_text(FixupResult r);

struct RecordHeader {
  uint16_t sequence = 0;
  uint16_t link_count = 0;
  uint16_t flags = 0;
  uint64_t base_ref = 0;  // 0 for a base record; else the base record's reference
  uint32_t bytes_in_use = 0;
};

// One attribute, pointing into the record's bytes (valid while they are).
struct AttrView {
  uint32_t type = 0;
  uint16_t flags = 0;
  uint16_t id = 0;
  bool non_resident = false;
  std::string name;  // UTF-8; empty for the unnamed attribute
  // Resident:
  const unsigned char* value = nullptr;
  uint32_t value_length = 0;
  // Non-resident:
  uint64_t start_vcn = 0, last_vcn = 0;
  uint64_t allocated_size = 0, data_size = 0, initialized_size = 0;
  uint16_t compression_unit = 0;  // log2 of clusters per compression unit
  const unsigned char* runlist = nullptr;
  uint32_t runlist_length = 0;
};

// Decodes a fixed-up File Record of `size` bytes: its header and every
// attribute up to the end marker. Malformed attributes end the walk with an
// error; the attributes before them are kept in *attrs.
Status parse_record(const unsigned char* p, size_t size, RecordHeader* header, std::vector<AttrView>* attrs);

// The attribute walk of parse_record over `n` bytes of attributes at `p`.
Status parse_attributes(const unsigned char* p, size_t n, std::vector<AttrView>* attrs);

}  // namespace dsvmi::ntfs

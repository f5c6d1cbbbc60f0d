// The resident attributes whose values the crawl decodes: $STANDARD_INFORMATION
// (times, DOS attributes), $FILE_NAME (one name of the file, in one
// namespace), $REPARSE_POINT (symlinks, junctions) and $ATTRIBUTE_LIST
// entries. Each decoder checks the value's length before reading a field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi::ntfs {

// DOS file attributes ($STANDARD_INFORMATION, $FILE_NAME).
inline constexpr uint32_t kDosReadOnly = 0x0001;
inline constexpr uint32_t kDosHidden = 0x0002;
inline constexpr uint32_t kDosSystem = 0x0004;
inline constexpr uint32_t kDosDirectory = 0x0010;
inline constexpr uint32_t kDosArchive = 0x0020;
inline constexpr uint32_t kDosSparse = 0x0200;
inline constexpr uint32_t kDosReparsePoint = 0x0400;
inline constexpr uint32_t kDosCompressed = 0x0800;

struct StandardInformation {
  uint64_t created = 0, modified = 0, mft_changed = 0, accessed = 0;  // NTFS times
  uint32_t dos_attributes = 0;
};
bool decode_standard_information(const unsigned char* v, size_t n, StandardInformation* out);

// $FILE_NAME namespaces. A Win32 name that is not 8.3-valid has a second
// $FILE_NAME in the DOS namespace: an alias, never a name of its own.
enum class Namespace : uint8_t { Posix = 0, Win32 = 1, Dos = 2, Win32AndDos = 3 };

struct FileName {
  uint64_t parent_ref = 0;
  Namespace name_space = Namespace::Posix;
  uint32_t dos_attributes = 0;
  std::string name;  // UTF-8, not yet sanitized
};
// Decodes a $FILE_NAME value (also the key of an $I30 index entry).
bool decode_file_name(const unsigned char* v, size_t n, FileName* out);

// Reparse tags with a target dsvmi shows as a symlink.
inline constexpr uint32_t kReparseMountPoint = 0xA0000003;  // junctions and volume mount points
inline constexpr uint32_t kReparseSymlink = 0xA000000C;
inline constexpr uint32_t kReparseLxSymlink = 0xA000001D;   // WSL

struct ReparsePoint {
  uint32_t tag = 0;
  bool is_link = false;
  std::string target;  // '\' turned into '/'; UTF-8
};
Status decode_reparse_point(const unsigned char* v, size_t n, ReparsePoint* out);

// ntfs-3g's and Interix's special files: a SYSTEM file whose data starts
// with a magic ("IntxLNK\1" + UTF-16 target, "IntxCHR\0"/"IntxBLK\0" + two
// 64-bit device numbers). FIFOs (empty) and sockets (one byte) have no magic.
enum class InterixKind { None, Symlink, CharDevice, BlockDevice };
InterixKind decode_interix(const unsigned char* v, size_t n, std::string* target, uint64_t* rdev);
inline constexpr size_t kInterixMaxBytes = 8 + 2 * 4096;

struct AttributeListEntry {
  uint32_t type = 0;
  uint64_t start_vcn = 0;
  uint64_t record_ref = 0;  // the record holding this attribute
  uint16_t id = 0;
  std::string name;
};
// Decodes every entry of an $ATTRIBUTE_LIST value; entries end at the first
// malformed one (reported in the Status), those before it are kept.
Status decode_attribute_list(const unsigned char* v, size_t n, size_t max_entries,
                             std::vector<AttributeListEntry>* out);

}  // namespace dsvmi::ntfs

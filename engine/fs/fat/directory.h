// Directory contents: arrays of 32-byte entries. A file is one short (8.3)
// entry, optionally preceded by VFAT long-name slots that carry the
// short name's checksum and count down to 1. The parser decides, as Linux's
// vfat driver does (fs/fat/dir.c), which entries are live and which name
// each one has; see docs/fat.md for every rule.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace dsvmi::fat {

inline constexpr uint8_t kAttrReadOnly = 0x01;
inline constexpr uint8_t kAttrHidden = 0x02;
inline constexpr uint8_t kAttrSystem = 0x04;
inline constexpr uint8_t kAttrVolume = 0x08;
inline constexpr uint8_t kAttrDirectory = 0x10;
inline constexpr uint8_t kAttrArchive = 0x20;
inline constexpr uint8_t kAttrLongName = 0x0F;

struct ParsedEntry {
  std::string name;        // UTF-8: the long name if a valid one precedes, else the short name
  std::string short_name;  // the 8.3 name as shown
  bool long_name = false;
  uint8_t attr = 0;
  uint32_t first_cluster = 0;
  uint32_t size = 0;
  uint16_t write_time = 0, write_date = 0;
  uint16_t create_time = 0, create_date = 0, access_date = 0;
  uint8_t create_centiseconds = 0;  // 0..199, units of 10 ms
  size_t offset = 0;       // byte offset of the short entry in the directory
  size_t slots = 1;        // 32-byte entries used, long-name slots included
};

struct DirectoryCallbacks {
  std::function<void(const ParsedEntry&)> entry;  // every live entry but "." and ".."
  std::function<void(const std::string&)> label;  // a volume-label entry
  std::function<void(size_t offset, const std::string&)> problem;
};

struct DirectoryCounts {
  uint64_t deleted = 0;       // 0xE5 short entries
  uint64_t orphan_slots = 0;  // long-name slots belonging to no short entry
};

// Parses `length` bytes of directory content (a multiple of 32 is used;
// the rest ignored). `fat32` decides whether the high half of the first
// cluster counts (FAT12/16 leave it to other uses).
void parse_directory(const unsigned char* p, size_t length, bool fat32, const DirectoryCallbacks& cb,
                     DirectoryCounts* counts);

}  // namespace dsvmi::fat

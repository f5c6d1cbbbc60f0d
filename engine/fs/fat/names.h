// File names on FAT: 8.3 short names (OEM code page 437, NT lower-case
// flags), VFAT long names (UTF-16LE in 13-character slots), both as UTF-8.
#pragma once

#include <cstdint>
#include <string>

namespace dsvmi::fat {

// The 11-byte short name field of entry `e` (with its NT case byte e[12]) as
// Linux shows it with shortname=mixed: "README.TXT", "readme.txt" when both
// lower-case flags are set, code page 437 bytes as UTF-8.
std::string short_name(const unsigned char* e);

// The checksum of an 11-byte short name that every long-name slot carries.
uint8_t short_name_checksum(const unsigned char* name11);

// Appends UTF-16 code unit sequence `units` (n of them) as UTF-8; unpaired
// surrogates become U+FFFD.
void append_utf16(const uint16_t* units, size_t n, std::string* out);

// Replaces bytes that cannot be in a POSIX name component ('/', NUL) with
// U+FFFD; returns true if it changed anything.
bool sanitize_name(std::string* name);

}  // namespace dsvmi::fat

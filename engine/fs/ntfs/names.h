// NTFS names are UTF-16LE code units (unpaired surrogates allowed, as on
// Windows). dsvmi shows them as UTF-8, an unpaired surrogate as U+FFFD, and
// '/' or NUL (legal in a POSIX-namespace name, impossible in a path
// component) as U+FFFD too.
#pragma once

#include <cstddef>
#include <string>

namespace dsvmi::ntfs {

// `units` UTF-16LE code units at `p` as UTF-8.
std::string utf16_to_utf8(const unsigned char* p, size_t units);

// Replaces '/' and NUL with U+FFFD; true if it changed anything.
bool sanitize_component(std::string* name);

}  // namespace dsvmi::ntfs

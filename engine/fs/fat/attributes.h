// FAT attribute byte -> neutral model. FAT has no owners or permissions;
// dsvmi shows what Linux's vfat driver shows with its defaults (uid 0,
// gid 0, umask 022): 0755, write bits cleared by the read-only attribute on
// files (Linux ignores it on directories unless mounted with rodir). Hidden,
// system and archive have no POSIX equivalent: the whole attribute byte is
// kept in Inode::flags. See docs/fat.md.
#pragma once

#include <cstdint>

#include "directory.h"

namespace dsvmi::fat {

inline uint32_t mode_of(uint8_t attr) {
  uint32_t mode = 0755;
  if ((attr & kAttrReadOnly) && !(attr & kAttrDirectory)) mode &= ~0222u;
  return mode;
}

}  // namespace dsvmi::fat

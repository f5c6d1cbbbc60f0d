// NTFS has no POSIX owner or mode unless ntfs-3g's user mapping is on.
// dsvmi synthesizes the mode from the DOS attributes, as docs/ntfs.md
// documents: directories 0755, files 0644, the read-only attribute clears
// the write bits of files (Windows ignores it on directories), symlinks 0777.
// uid and gid are 0. The DOS attributes themselves are kept in Inode::flags.
#pragma once

#include <cstdint>

#include "attributes.h"
#include "dsvmi/fs_model.h"

namespace dsvmi::ntfs {

inline uint32_t mode_of(FileType type, uint32_t dos_attributes) {
  switch (type) {
    case FileType::Directory: return 0755;
    case FileType::Symlink: return 0777;
    default: return (dos_attributes & kDosReadOnly) ? 0444 : 0644;
  }
}

}  // namespace dsvmi::ntfs

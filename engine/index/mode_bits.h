// st_mode type bits <-> dsvmi::FileType, as the index stores them.
#pragma once

#include <cstdint>

#include "dsvmi/fs_model.h"

namespace dsvmi {

inline constexpr uint16_t kModeTypeMask = 0170000;
inline constexpr uint16_t kModeRegular = 0100000;
inline constexpr uint16_t kModeDirectory = 0040000;

inline uint16_t mode_type_bits(FileType t) {
  switch (t) {
    case FileType::Regular: return 0100000;
    case FileType::Directory: return 0040000;
    case FileType::Symlink: return 0120000;
    case FileType::CharDevice: return 0020000;
    case FileType::BlockDevice: return 0060000;
    case FileType::Fifo: return 0010000;
    case FileType::Socket: return 0140000;
    default: return 0;
  }
}

inline FileType file_type_of_mode(uint16_t mode) {
  switch (mode & kModeTypeMask) {
    case 0100000: return FileType::Regular;
    case 0040000: return FileType::Directory;
    case 0120000: return FileType::Symlink;
    case 0020000: return FileType::CharDevice;
    case 0060000: return FileType::BlockDevice;
    case 0010000: return FileType::Fifo;
    case 0140000: return FileType::Socket;
    default: return FileType::Unknown;
  }
}

}  // namespace dsvmi

// The file-system-neutral model: what every file system crawler (ext4, FAT,
// NTFS) reports, and what the index, the reverse map and the inference engine
// store: enough to rebuild a POSIX view (docs/architecture.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsvmi {

enum class FileType : uint8_t {
  Unknown = 0,
  Regular = 1,
  Directory = 2,
  Symlink = 3,
  CharDevice = 4,
  BlockDevice = 5,
  Fifo = 6,
  Socket = 7,
};

// The type's name in the engine's state, events and `ls --json` (docs/events.md).
inline const char* file_type_name(FileType t) {
  switch (t) {
    case FileType::Regular: return "file";
    case FileType::Directory: return "dir";
    case FileType::Symlink: return "symlink";
    case FileType::CharDevice: return "chardev";
    case FileType::BlockDevice: return "blockdev";
    case FileType::Fifo: return "fifo";
    case FileType::Socket: return "socket";
    default: return "unknown";
  }
}

// What a file-system block is. The reverse map stores one kind per block;
// metadata kinds decide what the gate passes in low-overhead mode.
enum class BlockKind : uint8_t {
  Free = 0,
  Superblock = 1,        // primary or backup superblock (and boot sector/BPB for FAT/NTFS)
  GroupDescriptors = 2,  // ext4 GDT incl. reserved GDT blocks, meta_bg descriptors
  BlockBitmap = 3,
  InodeBitmap = 4,
  InodeTable = 5,        // ext4 inode table; NTFS MFT; FAT directory-entry equivalent N/A
  Directory = 6,         // directory content blocks (linear or htree)
  MapNode = 7,           // extent tree nodes, indirect blocks (ext2/3), FAT table
  Journal = 8,           // journal inode blocks
  Xattr = 9,             // external xattr blocks
  FileData = 10,         // data blocks of regular files (and slow symlinks)
  Reserved = 11,         // known but otherwise uninteresting (e.g. bootloader gap)
};

// One contiguous run of file blocks: logical file block -> physical fs block.
struct Extent {
  uint64_t logical = 0;   // first logical block in the file
  uint64_t physical = 0;  // first physical block on the file system
  uint32_t length = 0;    // blocks
  bool unwritten = false; // allocated but reads as zeroes (ext4 uninit extent)
};

// A named data stream of a file (NTFS alternate data stream, "file:name"):
// its own size and clusters beside the file's unnamed data. Crawlers of file
// systems without them leave Inode::streams empty.
struct NamedStream {
  std::string name;
  uint64_t size = 0;
  std::vector<Extent> extents;  // empty when resident (inside the file's record)
};

// Normalized inode attributes. Times are nanoseconds since the Unix epoch.
struct Inode {
  uint64_t ino = 0;
  FileType type = FileType::Unknown;
  uint32_t mode = 0;  // permission bits and setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint32_t links = 0;
  int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0, crtime_ns = 0;
  uint32_t flags = 0;         // file-system specific flags (ext4 i_flags)
  uint32_t generation = 0;
  uint64_t rdev = 0;          // device number for char/block devices
  std::string symlink_target; // for symlinks (fast or slow)
  std::vector<Extent> extents;  // data blocks (inline data: empty)
  std::vector<NamedStream> streams;  // NTFS alternate data streams (docs/ntfs.md)
};

struct DirEntry {
  uint64_t ino = 0;
  FileType type = FileType::Unknown;
  std::string name;
};

// A damage report: the crawl goes on where it safely can.
struct CrawlProblem {
  uint64_t ino = 0;    // 0 when not about one inode
  uint64_t block = 0;  // fs block involved, if any
  std::string what;
};

}  // namespace dsvmi

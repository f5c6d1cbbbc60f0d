// Helpers shared by the index commands (crawl, ls, stat): opening an index
// (optionally checked against its disk), picking a file system, formatting.
#pragma once

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "dsvmi/disk_reader.h"
#include "dsvmi/index.h"

namespace dsvmi::cli {

// Opens `path`; with a non-empty `disk` spec also refuses a stale index.
// Prints a one-line error and returns nullptr on failure.
inline std::unique_ptr<Index> open_index_or_say_why(const char* cmd, const std::string& path,
                                                    const std::string& disk) {
  Status s;
  auto idx = Index::open(path, &s);
  if (!idx) {
    std::fprintf(stderr, "dsvmi %s: %s\n", cmd, s.message().c_str());
    return nullptr;
  }
  if (!disk.empty()) {
    auto reader = open_disk(disk, {}, &s);
    if (!reader) {
      std::fprintf(stderr, "dsvmi %s: %s\n", cmd, s.message().c_str());
      return nullptr;
    }
    if (!(s = idx->check_against(*reader))) {
      std::fprintf(stderr, "dsvmi %s: %s: %s\n", cmd, path.c_str(), s.message().c_str());
      return nullptr;
    }
  }
  if (idx->filesystems().empty()) {
    std::fprintf(stderr, "dsvmi %s: %s: the index holds no file system\n", cmd, path.c_str());
    return nullptr;
  }
  return idx;
}

inline const char* type_name(FileType t) {
  switch (t) {
    case FileType::Regular: return "regular file";
    case FileType::Directory: return "directory";
    case FileType::Symlink: return "symbolic link";
    case FileType::CharDevice: return "character device";
    case FileType::BlockDevice: return "block device";
    case FileType::Fifo: return "fifo";
    case FileType::Socket: return "socket";
    default: return "unknown";
  }
}

inline char type_char(FileType t) {
  switch (t) {
    case FileType::Regular: return '-';
    case FileType::Directory: return 'd';
    case FileType::Symlink: return 'l';
    case FileType::CharDevice: return 'c';
    case FileType::BlockDevice: return 'b';
    case FileType::Fifo: return 'p';
    case FileType::Socket: return 's';
    default: return '?';
  }
}

inline std::string mode_string(const Inode& in) {
  std::string s(10, '-');
  s[0] = type_char(in.type);
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (in.mode & (0400 >> i)) s[1 + i] = rwx[i];
  if (in.mode & 04000) s[3] = (in.mode & 0100) ? 's' : 'S';
  if (in.mode & 02000) s[6] = (in.mode & 0010) ? 's' : 'S';
  if (in.mode & 01000) s[9] = (in.mode & 0001) ? 't' : 'T';
  return s;
}

inline std::string utc_time(int64_t ns) {
  time_t t = time_t(ns / 1000000000);
  struct tm tm;
  char buf[64];
  if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm)) return "?";
  return buf;
}

// "--fs N" selection; returns false (after printing) when out of range.
inline const FsIndex* pick_fs(const char* cmd, const Index& idx, long n) {
  if (n < 0 || size_t(n) >= idx.filesystems().size()) {
    std::fprintf(stderr, "dsvmi %s: --fs %ld: the index has %zu file system(s)\n", cmd, n, idx.filesystems().size());
    return nullptr;
  }
  return &idx.filesystems()[size_t(n)];
}

}  // namespace dsvmi::cli

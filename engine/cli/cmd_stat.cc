// dsvmi stat INDEX PATH|--inode N|--block B [--fs N] [--disk IMAGE]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"
#include "index_cli_util.h"

namespace dsvmi::cli {
namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi stat INDEX PATH|--inode N|--block B [--fs N] [--disk IMAGE]\n"
               "  Shows an inode as crawled into INDEX: attributes, every name (hard\n"
               "  links), its extents and blocks; or what a file-system block is.\n"
               "  --fs N        the N-th file system of the index (default 0)\n"
               "  --disk IMAGE  refuse the index if it is stale for IMAGE\n");
}

const char* kind_name(BlockKind k) {
  static const char* const names[] = {"free", "superblock", "group descriptors", "block bitmap", "inode bitmap",
                                      "inode table", "directory", "extent/indirect node", "journal", "xattr",
                                      "file data", "reserved"};
  return size_t(k) < sizeof names / sizeof names[0] ? names[size_t(k)] : "?";
}

}  // namespace

int cmd_stat(int argc, char** argv) {
  std::string index_path, path, disk;
  long fs_number = 0;
  long long want_ino = -1, want_block = -1;
  for (int i = 0; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!std::strcmp(argv[i], "--fs") && i + 1 < argc) {
      fs_number = std::strtol(argv[++i], nullptr, 10);
    } else if (!std::strcmp(argv[i], "--disk") && i + 1 < argc) {
      disk = argv[++i];
    } else if (!std::strcmp(argv[i], "--inode") && i + 1 < argc) {
      want_ino = std::strtoll(argv[++i], nullptr, 10);
    } else if (!std::strcmp(argv[i], "--block") && i + 1 < argc) {
      want_block = std::strtoll(argv[++i], nullptr, 10);
    } else if (argv[i][0] == '-') {
      usage(stderr);
      return 2;
    } else if (index_path.empty()) {
      index_path = argv[i];
    } else if (path.empty()) {
      path = argv[i];
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (index_path.empty() || (path.empty() && want_ino < 0 && want_block < 0)) {
    usage(stderr);
    return 2;
  }
  auto idx = open_index_or_say_why("stat", index_path, disk);
  if (!idx) return 1;
  const FsIndex* fs = pick_fs("stat", *idx, fs_number);
  if (!fs) return 1;
  Status s;
  if (want_block >= 0) {
    BlockOwner o;
    if (!(s = fs->owner(uint64_t(want_block), &o))) {
      std::fprintf(stderr, "dsvmi stat: %s\n", s.message().c_str());
      return 1;
    }
    std::printf("Block: %lld  Kind: %s", want_block, kind_name(o.kind));
    if (o.ino) {
      std::string p;
      std::printf("  Inode: %llu", (unsigned long long)o.ino);
      if (o.kind == BlockKind::FileData || o.kind == BlockKind::Directory || o.kind == BlockKind::Journal)
        std::printf("  Logical: %llu", (unsigned long long)o.logical);
      if (fs->path(o.ino, &p)) std::printf("  Path: %s", p.c_str());
    }
    std::printf("\n");
    return 0;
  }
  uint64_t ino = want_ino >= 0 ? uint64_t(want_ino) : 0;
  if (want_ino < 0 && !(s = fs->lookup(path, &ino))) {
    std::fprintf(stderr, "dsvmi stat: %s\n", s.message().c_str());
    return 1;
  }
  Inode in;
  if (!(s = fs->inode(ino, &in))) {
    std::fprintf(stderr, "dsvmi stat: %s\n", s.message().c_str());
    return 1;
  }
  std::vector<std::string> names;
  Status ns = fs->paths(ino, &names);
  std::printf("  File: %s\n", path.empty() ? (names.empty() ? "?" : names[0].c_str()) : path.c_str());
  std::printf(" Inode: %llu  Type: %s  Mode: %04o (%s)  Links: %u\n", (unsigned long long)in.ino,
              type_name(in.type), in.mode, mode_string(in).c_str(), in.links);
  std::printf("   Uid: %u  Gid: %u  Size: %llu", in.uid, in.gid, (unsigned long long)in.size);
  if (in.type == FileType::CharDevice || in.type == FileType::BlockDevice)
    std::printf("  Device: %llu", (unsigned long long)in.rdev);
  std::printf("\n Mtime: %s (%lld)\n Ctime: %s (%lld)\n", utc_time(in.mtime_ns).c_str(),
              (long long)(in.mtime_ns / 1000000000), utc_time(in.ctime_ns).c_str(),
              (long long)(in.ctime_ns / 1000000000));
  if (in.type == FileType::Symlink) std::printf("  Link: %s\n", in.symlink_target.c_str());
  if (ns) {
    std::printf(" Names:");
    for (const auto& n : names) std::printf(" %s", n.c_str());
    std::printf("\n");
  } else {
    std::printf(" Names: (%s)\n", ns.message().c_str());
  }
  uint64_t blocks = 0;
  for (const Extent& e : in.extents) blocks += e.length;
  std::printf("Blocks: %llu (block size %u)  Extents: %zu\n", (unsigned long long)blocks, fs->info().block_size,
              in.extents.size());
  for (const Extent& e : in.extents)
    std::printf("  logical %llu-%llu -> physical %llu-%llu%s\n", (unsigned long long)e.logical,
                (unsigned long long)(e.logical + e.length - 1), (unsigned long long)e.physical,
                (unsigned long long)(e.physical + e.length - 1), e.unwritten ? " (unwritten)" : "");
  return 0;
}

}  // namespace dsvmi::cli

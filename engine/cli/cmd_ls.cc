// dsvmi ls INDEX PATH [-l | --json] [--fs N] [--disk IMAGE]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"
#include "dsvmi/daemon_json.h"
#include "index_cli_util.h"
#include "json_output.h"

namespace dsvmi::cli {
namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi ls INDEX PATH [-l | --json] [--fs N] [--disk IMAGE]\n"
               "  Lists a directory (or names a file) as crawled into INDEX.\n"
               "  -l            long format: mode, links, uid, gid, size, mtime (UTC), inode\n"
               "  --json        one JSON object per name (docs/cli-json.md)\n"
               "  --fs N        the N-th file system of the index (default 0)\n"
               "  --disk IMAGE  refuse the index if it is stale for IMAGE\n");
}

void print_long(const Inode& in, const std::string& name) {
  std::printf("%s %3u %5u %5u %10llu %s %8llu %s", mode_string(in).c_str(), in.links, in.uid, in.gid,
              (unsigned long long)(in.type == FileType::CharDevice || in.type == FileType::BlockDevice ? in.rdev
                                                                                                      : in.size),
              utc_time(in.mtime_ns).c_str(), (unsigned long long)in.ino, name.c_str());
  if (in.type == FileType::Symlink) std::printf(" -> %s", in.symlink_target.c_str());
  std::printf("\n");
}

// The --json form of one name (docs/cli-json.md, `dsvmi ls --json`).
void print_json(const Inode& in, const std::string& name) {
  Json::Object o{{"name", name},   {"ino", in.ino},     {"type", file_type_name(in.type)},
                 {"mode", in.mode}, {"links", in.links}, {"uid", in.uid},
                 {"gid", in.gid},   {"size", in.size},   {"rdev", in.rdev},
                 {"mtime_ns", in.mtime_ns}};
  if (in.type == FileType::Symlink) o["target"] = in.symlink_target;
  print_record(Json(std::move(o)));
}

}  // namespace

int cmd_ls(int argc, char** argv) {
  const bool json = take_flag(&argc, argv, "--json");
  std::string index_path, path, disk;
  bool long_format = false;
  long fs_number = 0;
  for (int i = 0; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!std::strcmp(argv[i], "-l")) {
      long_format = true;
    } else if (!std::strcmp(argv[i], "--fs") && i + 1 < argc) {
      fs_number = std::strtol(argv[++i], nullptr, 10);
    } else if (!std::strcmp(argv[i], "--disk") && i + 1 < argc) {
      disk = argv[++i];
    } else if (argv[i][0] == '-' && argv[i][1] != 0) {
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
  if (index_path.empty()) {
    usage(stderr);
    return 2;
  }
  if (path.empty()) path = "/";
  auto idx = open_index_or_say_why("ls", index_path, disk);
  if (!idx) return 1;
  const FsIndex* fs = pick_fs("ls", *idx, fs_number);
  if (!fs) return 1;
  uint64_t ino = 0;
  Inode in;
  Status s = fs->lookup(path, &ino);
  if (s) s = fs->inode(ino, &in);
  if (!s) {
    std::fprintf(stderr, "dsvmi ls: %s\n", s.message().c_str());
    return 1;
  }
  if (in.type != FileType::Directory) {
    if (json) print_json(in, path);
    else if (long_format) print_long(in, path);
    else std::printf("%s\n", path.c_str());
    return 0;
  }
  std::vector<DirEntry> entries;
  if (!(s = fs->list(ino, &entries))) {
    std::fprintf(stderr, "dsvmi ls: %s\n", s.message().c_str());
    return 1;
  }
  int rc = 0;
  for (const DirEntry& e : entries) {
    if (!long_format && !json) {
      std::printf("%s\n", e.name.c_str());
      continue;
    }
    Inode child;
    if (!(s = fs->inode(e.ino, &child))) {
      std::fprintf(stderr, "dsvmi ls: %s: %s\n", e.name.c_str(), s.message().c_str());
      rc = 1;
      continue;
    }
    if (json) print_json(child, e.name);
    else print_long(child, e.name);
  }
  return rc;
}

}  // namespace dsvmi::cli

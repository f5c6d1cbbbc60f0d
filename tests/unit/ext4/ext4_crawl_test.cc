// The ext4 crawler against e2fsprogs' own view of images mkfs.ext4 -d built
// from a generated tree. Oracles: debugfs (ls -p, stat, icheck), dumpe2fs
// (group metadata locations) and the source tree itself (file contents,
// symlink targets). Nothing compared here comes from dsvmi code.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "dsvmi/disk_reader.h"
#include "dsvmi/ext4.h"
#include "image_tools.h"

namespace dsvmi::testing {
namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes `bytes` at `offset` of a file without filling what lies before.
void write_at(const std::string& path, uint64_t offset, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

struct TreeOptions {
  bool xattrs = true;
  size_t htree_entries = 2000;
};

// The generated tree: every feature the crawler must handle.
void make_tree(const std::string& root, const TreeOptions& opt) {
  namespace fs = std::filesystem;
  std::mt19937_64 rng(42);
  fs::create_directories(root + "/a/b/c/d");
  fs::create_directories(root + "/empty");
  fs::create_directories(root + "/many");
  write_file(root + "/tiny", "x");
  write_file(root + "/inline59", std::string(59, 'i'));
  write_file(root + "/small100", random_bytes(rng, 100));
  write_file(root + "/a/b/c/d/deep", random_bytes(rng, 5000));
  write_file(root + "/big", random_bytes(rng, 3 << 20));
  write_file(root + "/empty_file", "");
  // Sparse: an island in the middle, one at the end; and one past 64 MiB so
  // 1 KiB-block ext2/3 need a triple-indirect block.
  write_at(root + "/sparse", 5 << 20, random_bytes(rng, 8192));
  write_at(root + "/sparse", 20 << 20, "end");
  write_at(root + "/far", 70ull << 20, random_bytes(rng, 4096));
  // Fragmented: 1500 single-block islands, so the extent tree needs index
  // nodes (depth >= 1) and ext2/3 a long indirect map.
  {
    int fd = ::open((root + "/fragmented").c_str(), O_WRONLY | O_CREAT, 0644);
    std::string block = random_bytes(rng, 4096);
    for (int i = 0; i < 1500; i++) pwrite(fd, block.data(), 4096, off_t{i} * 2 * 65536);
    ::close(fd);
  }
  // Hard links across directories.
  write_file(root + "/a/linked", random_bytes(rng, 3000));
  fs::create_hard_link(root + "/a/linked", root + "/a/b/link2");
  fs::create_hard_link(root + "/a/linked", root + "/link3");
  fs::create_symlink("tiny", root + "/fast_link");
  fs::create_symlink(std::string(200, 'L') + "/target", root + "/slow_link");
  fs::create_symlink("a/b/c", root + "/dir_link");
  mkfifo((root + "/fifo").c_str(), 0640);
  mknod((root + "/chardev").c_str(), S_IFCHR | 0600, makedev(1, 3));
  mknod((root + "/blockdev").c_str(), S_IFBLK | 0660, makedev(8, 17));
  mknod((root + "/socket").c_str(), S_IFSOCK | 0755, 0);
  chown((root + "/a/b").c_str(), 1234, 5678);
  chmod((root + "/a/b").c_str(), 02750);
  chown((root + "/tiny").c_str(), 70000, 80000);  // needs the high uid/gid halves
  chmod((root + "/tiny").c_str(), 04711);
  if (opt.xattrs) {
    write_file(root + "/xattr_small", "s");
    write_file(root + "/xattr_big", "b");
    setxattr((root + "/xattr_small").c_str(), "user.note", "hello", 5, 0);
    std::string big(900, 'v');
    setxattr((root + "/xattr_big").c_str(), "user.big", big.data(), big.size(), 0);
  }
  for (size_t i = 0; i < opt.htree_entries; i++) {
    char name[64];
    std::snprintf(name, sizeof name, "/many/entry_with_a_fairly_long_name_%05zu", i);
    write_file(root + name, i % 100 == 0 ? random_bytes(rng, 700) : std::string());
  }
  // Distinct mtimes with nanoseconds.
  struct timespec times[2] = {{1600000000, 123456789}, {1500000000, 987654321}};
  utimensat(AT_FDCWD, (root + "/big").c_str(), times, 0);
  struct timespec old[2] = {{100, 0}, {200, 500}};
  utimensat(AT_FDCWD, (root + "/a/linked").c_str(), old, 0);
}

// ---- debugfs / dumpe2fs output parsing ------------------------------------

// Splits the output of `debugfs -f cmds` into one section per command.
std::vector<std::string> debugfs_sections(const std::string& image, const std::vector<std::string>& commands,
                                          const std::string& dir) {
  std::string cmdfile = dir + "/debugfs.cmds";
  std::ofstream f(cmdfile);
  for (const auto& c : commands) f << c << "\n";
  f.close();
  std::string out = run("debugfs -f " + quote(cmdfile) + " " + quote(image) + " 2>&1");
  std::vector<std::string> sections;
  std::istringstream in(out);
  std::string line;
  bool started = false;
  while (std::getline(in, line)) {
    if (line.rfind("debugfs: ", 0) == 0) {
      sections.emplace_back();
      started = true;
      continue;
    }
    if (started) sections.back() += line + "\n";
  }
  return sections;
}

struct OracleEntry {
  uint64_t dir, ino;
  std::string name;
  uint32_t mode;  // with type bits
  uint32_t uid, gid;
  std::string size;  // empty for directories
};

// Breadth-first walk of the whole tree with `ls -p`, one debugfs run per level.
std::vector<OracleEntry> debugfs_walk(const std::string& image, const std::string& dir) {
  std::vector<OracleEntry> all;
  std::vector<uint64_t> level = {2};
  std::set<uint64_t> seen = {2};
  while (!level.empty()) {
    std::vector<std::string> cmds;
    for (uint64_t d : level) cmds.push_back("ls -p <" + std::to_string(d) + ">");
    auto sections = debugfs_sections(image, cmds, dir);
    EXPECT_EQ(sections.size(), level.size());
    std::vector<uint64_t> next;
    for (size_t i = 0; i < sections.size() && i < level.size(); i++) {
      std::istringstream in(sections[i]);
      std::string line;
      while (std::getline(in, line)) {
        if (line.size() < 2 || line[0] != '/') continue;
        std::vector<std::string> f;
        std::string cur;
        for (size_t k = 1; k < line.size(); k++) {
          if (line[k] == '/') { f.push_back(cur); cur.clear(); } else { cur += line[k]; }
        }
        if (f.size() < 6) continue;
        OracleEntry e{level[i], std::stoull(f[0]), f[4], static_cast<uint32_t>(std::stoul(f[1], nullptr, 8)),
                      static_cast<uint32_t>(std::stoul(f[2])), static_cast<uint32_t>(std::stoul(f[3])), f[5]};
        if (e.ino == 0 || e.name == "." || e.name == "..") continue;  // ls -p also prints empty slots
        all.push_back(e);
        if ((e.mode & 0xF000) == 0x4000 && seen.insert(e.ino).second) next.push_back(e.ino);
      }
    }
    level = next;
  }
  return all;
}

struct OracleStat {
  std::string type;
  uint32_t mode = 0, uid = 0, gid = 0, links = 0;
  uint64_t size = 0, file_acl = 0;
  int64_t mtime_ns = 0;
  bool has_mtime = false;
  std::string fast_link;
  bool has_fast_link = false;
  int dev_major = -1, dev_minor = -1;
  std::map<uint64_t, uint64_t> blocks;  // logical -> physical (data)
  std::set<uint64_t> map_nodes;         // (IND)/(DIND)/(TIND)/(ETBn)
};

OracleStat parse_stat(const std::string& text) {
  OracleStat s;
  std::smatch m;
  auto find = [&](const char* re) { return std::regex_search(text, m, std::regex(re)); };
  if (find(R"(Type: (.+?)\s+Mode:\s+(\d+))")) {
    s.type = m[1];
    s.mode = static_cast<uint32_t>(std::stoul(m[2], nullptr, 8));
  }
  if (find(R"(User:\s+(\d+)\s+Group:\s+(\d+).*Size: (\d+))")) {
    s.uid = static_cast<uint32_t>(std::stoul(m[1]));
    s.gid = static_cast<uint32_t>(std::stoul(m[2]));
    s.size = std::stoull(m[3]);
  }
  if (find(R"(File ACL: (\d+))")) s.file_acl = std::stoull(m[1]);
  if (find(R"(Links: (\d+))")) s.links = static_cast<uint32_t>(std::stoul(m[1]));
  if (find(R"(mtime: 0x([0-9a-f]+)(?::([0-9a-f]+))?)")) {
    int64_t sec = static_cast<int32_t>(std::stoul(m[1], nullptr, 16));
    uint32_t extra = m[2].matched ? static_cast<uint32_t>(std::stoul(m[2], nullptr, 16)) : 0;
    sec += static_cast<int64_t>(extra & 3) << 32;
    s.mtime_ns = sec * 1000000000 + (extra >> 2);
    s.has_mtime = true;
  }
  if (find(R"(Fast link dest: \"(.*)\")")) {
    s.fast_link = m[1];
    s.has_fast_link = true;
  }
  if (find(R"(Device major/minor number: ([0-9a-f]+):([0-9a-f]+))")) {
    s.dev_major = std::stoi(m[1]);
    s.dev_minor = std::stoi(m[2]);
  }
  size_t at = text.find("EXTENTS:\n");
  if (at == std::string::npos) at = text.find("BLOCKS:\n");
  if (at != std::string::npos) {
    std::string list = text.substr(text.find('\n', at) + 1);
    std::regex item(R"(\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?|\((IND|DIND|TIND|ETB\d+)\):(\d+))");
    for (auto it = std::sregex_iterator(list.begin(), list.end(), item); it != std::sregex_iterator(); ++it) {
      const std::smatch& x = *it;
      if (x[5].matched) {
        s.map_nodes.insert(std::stoull(x[6]));
        continue;
      }
      uint64_t l0 = std::stoull(x[1]), l1 = x[2].matched ? std::stoull(x[2]) : l0;
      uint64_t p0 = std::stoull(x[3]);
      for (uint64_t l = l0; l <= l1; l++) s.blocks[l] = p0 + (l - l0);
    }
  }
  return s;
}

// dumpe2fs: group metadata locations by kind.
std::map<BlockKind, std::set<uint64_t>> dumpe2fs_metadata(const std::string& image) {
  std::string out = run("dumpe2fs " + quote(image) + " 2>/dev/null");
  std::map<BlockKind, std::set<uint64_t>> meta;
  auto add = [&](BlockKind k, const std::string& a, const std::string& b) {
    uint64_t x = std::stoull(a), y = b.empty() ? x : std::stoull(b);
    for (uint64_t v = x; v <= y; v++) meta[k].insert(v);
  };
  std::smatch m;
  struct Pat { const char* re; BlockKind kind; };
  const Pat pats[] = {
      {R"(superblock at (\d+)())", BlockKind::Superblock},
      {R"(Group descriptors? at (\d+)(?:-(\d+))?)", BlockKind::GroupDescriptors},
      {R"(Reserved GDT blocks at (\d+)(?:-(\d+))?)", BlockKind::GroupDescriptors},
      {R"(Block bitmap at (\d+)())", BlockKind::BlockBitmap},
      {R"(Inode bitmap at (\d+)())", BlockKind::InodeBitmap},
      {R"(Inode table at (\d+)(?:-(\d+))?)", BlockKind::InodeTable},
  };
  for (const Pat& p : pats) {
    std::regex re(p.re);
    for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) {
      add(p.kind, (*it)[1], (*it)[2].matched ? (*it)[2].str() : "");
    }
  }
  return meta;
}

std::string read_source(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

FileType type_from_debugfs(const std::string& t) {
  if (t == "regular") return FileType::Regular;
  if (t == "directory") return FileType::Directory;
  if (t == "symlink") return FileType::Symlink;
  if (t == "FIFO") return FileType::Fifo;
  if (t == "character special") return FileType::CharDevice;
  if (t == "block special") return FileType::BlockDevice;
  if (t == "socket") return FileType::Socket;
  return FileType::Unknown;
}

// ---- the comparison --------------------------------------------------------

struct Variant {
  const char* name;
  const char* mkfs_args;
  bool xattrs = true;
  const char* size = "96M";
};

class Ext4CrawlTest : public ::testing::TestWithParam<Variant> {};

// Crawls `image` (whole file or the partition at offset/size) and compares
// everything with debugfs/dumpe2fs run on `fs_image` (the bare file system).
void crawl_and_compare(const std::string& disk_path, uint64_t offset, uint64_t size, const std::string& fs_image,
                       const std::string& tree, const TempDir& tmp) {
  Status err;
  auto disk = open_disk(disk_path, DiskReaderOptions{}, &err);
  ASSERT_TRUE(disk) << err.message();
  RecordingSink sink;
  Ext4CrawlStats stats;
  Ext4CrawlOptions options;
  options.batch_bytes = 256 << 10;  // small batches: exercise the batching edges
  Status s = crawl_ext4(*disk, offset, size, sink, options, &stats);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(sink.begins, 1);
  EXPECT_EQ(sink.ends, 1);
  EXPECT_EQ(sink.duplicate_inodes, 0);
  EXPECT_TRUE(sink.problems.empty()) << sink.problems_text();
  const uint32_t bs = sink.info.block_size;

  // 1. Every directory entry, as debugfs lists them.
  std::vector<OracleEntry> oracle = debugfs_walk(fs_image, tmp.path());
  std::multiset<std::tuple<uint64_t, std::string, uint64_t>> want, got;
  for (const auto& e : oracle) want.insert({e.dir, e.name, e.ino});
  for (const auto& [dir, e] : sink.entries) got.insert({dir, e.name, e.ino});
  EXPECT_EQ(want.size(), got.size());
  EXPECT_TRUE(want == got) << "directory entries differ from debugfs";
  for (const auto& w : want) {
    if (!got.count(w)) ADD_FAILURE() << "missing entry " << std::get<0>(w) << "/" << std::get<1>(w);
  }
  for (const auto& g : got) {
    if (!want.count(g)) ADD_FAILURE() << "extra entry " << std::get<0>(g) << "/" << std::get<1>(g);
  }
  ASSERT_GT(oracle.size(), 200u);
  for (const auto& e : oracle) {
    auto it = sink.inodes.find(e.ino);
    ASSERT_NE(it, sink.inodes.end()) << "inode " << e.ino << " (" << e.name << ") not reported";
    EXPECT_EQ(it->second.mode, e.mode & 07777) << e.name;
    EXPECT_EQ(it->second.uid, e.uid) << e.name;
    EXPECT_EQ(it->second.gid, e.gid) << e.name;
    if (!e.size.empty()) { EXPECT_EQ(std::to_string(it->second.size), e.size) << e.name; }
  }

  // 2. Every reported inode, as debugfs stat shows it.
  std::vector<std::string> cmds;
  std::vector<uint64_t> inos;
  for (const auto& [ino, n] : sink.inodes) {
    cmds.push_back("stat <" + std::to_string(ino) + ">");
    inos.push_back(ino);
  }
  auto sections = debugfs_sections(fs_image, cmds, tmp.path());
  ASSERT_EQ(sections.size(), inos.size());
  std::map<uint64_t, std::set<uint64_t>> our_nodes;
  std::map<uint64_t, uint64_t> our_xattr_owner;
  for (const auto& r : sink.runs) {
    for (uint64_t b = r.first; b < r.first + r.count; b++) {
      if (r.kind == BlockKind::MapNode) our_nodes[r.owner].insert(b);
      if (r.kind == BlockKind::Xattr) our_xattr_owner[b] = r.owner;
    }
  }
  size_t compared_extents = 0;
  for (size_t i = 0; i < inos.size(); i++) {
    const Inode& n = sink.inodes.at(inos[i]);
    OracleStat o = parse_stat(sections[i]);
    SCOPED_TRACE("inode " + std::to_string(n.ino));
    EXPECT_EQ(n.type, type_from_debugfs(o.type));
    EXPECT_EQ(n.mode, o.mode);
    EXPECT_EQ(n.uid, o.uid);
    EXPECT_EQ(n.gid, o.gid);
    EXPECT_EQ(n.size, o.size);
    EXPECT_EQ(n.links, o.links);
    ASSERT_TRUE(o.has_mtime);
    EXPECT_EQ(n.mtime_ns, o.mtime_ns);
    if (o.has_fast_link) { EXPECT_EQ(n.symlink_target, o.fast_link); }
    if (o.dev_major >= 0) {
      EXPECT_EQ(major(n.rdev), static_cast<unsigned>(o.dev_major));
      EXPECT_EQ(minor(n.rdev), static_cast<unsigned>(o.dev_minor));
    }
    if (o.file_acl != 0) { EXPECT_TRUE(our_xattr_owner.count(o.file_acl)) << "xattr block " << o.file_acl; }
    if (n.ino == 7) continue;  // resize inode: its "data" are the reserved GDT blocks (compared below)
    std::map<uint64_t, uint64_t> ours;
    for (const Extent& x : n.extents) {
      for (uint64_t k = 0; k < x.length; k++) ours[x.logical + k] = x.physical + k;
    }
    EXPECT_TRUE(ours == o.blocks) << "block map differs: ours " << ours.size() << " blocks, debugfs "
                                  << o.blocks.size();
    EXPECT_TRUE(our_nodes[n.ino] == o.map_nodes) << "map nodes differ";
    compared_extents += ours.size();
  }
  EXPECT_GT(compared_extents, 0u);

  // 3. Contents and link targets against the source tree, by path.
  std::map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> children;
  for (const auto& [dir, e] : sink.entries) children[dir].push_back({e.ino, e.name});
  std::vector<std::pair<uint64_t, std::string>> stack = {{2, ""}};
  size_t files_checked = 0;
  while (!stack.empty()) {
    auto [dir, path] = stack.back();
    stack.pop_back();
    for (const auto& [ino, name] : children[dir]) {
      std::string p = path + "/" + name;
      const Inode& n = sink.inodes.at(ino);
      if (n.type == FileType::Directory) {
        if (name != "lost+found") stack.push_back({ino, p});
        continue;
      }
      std::string src = tree + p;
      if (n.type == FileType::Symlink) {
        EXPECT_EQ(n.symlink_target, std::filesystem::read_symlink(src).string()) << p;
      } else if (n.type == FileType::Regular && !n.extents.empty()) {
        std::string want_bytes = read_source(src);
        std::string bytes(n.size, '\0');
        for (const Extent& x : n.extents) {
          for (uint64_t k = 0; k < x.length; k++) {
            uint64_t at = (x.logical + k) * bs;
            if (at >= n.size) break;
            uint64_t len = std::min<uint64_t>(bs, n.size - at);
            ASSERT_TRUE(disk->read(offset + (x.physical + k) * bs,
                                   std::span<std::byte>(reinterpret_cast<std::byte*>(bytes.data() + at), len)));
          }
        }
        EXPECT_TRUE(bytes == want_bytes) << "content of " << p << " differs from the source";
        files_checked++;
      }
    }
  }
  EXPECT_GT(files_checked, 5u);

  // 4. Group metadata locations, as dumpe2fs lists them.
  auto meta = dumpe2fs_metadata(fs_image);
  std::map<BlockKind, std::set<uint64_t>> ours;
  for (const auto& r : sink.runs) {
    if (r.kind == BlockKind::MapNode || r.kind == BlockKind::Xattr || r.kind == BlockKind::Reserved) continue;
    for (uint64_t b = r.first; b < r.first + r.count; b++) ours[r.kind].insert(b);
  }
  for (BlockKind k : {BlockKind::Superblock, BlockKind::GroupDescriptors, BlockKind::BlockBitmap,
                      BlockKind::InodeBitmap, BlockKind::InodeTable}) {
    EXPECT_TRUE(meta[k] == ours[k]) << "metadata kind " << int(k) << ": dumpe2fs " << meta[k].size()
                                    << " blocks, ours " << ours[k].size();
  }

  // 5. Sampled blocks: icheck names the owner we report.
  std::vector<std::pair<uint64_t, uint64_t>> samples;  // block, owner (0 = none)
  std::mt19937_64 rng(7);
  std::vector<const Inode*> with_data;
  for (const auto& [ino, n] : sink.inodes) if (!n.extents.empty() && ino != 7) with_data.push_back(&n);
  for (int i = 0; i < 40 && !with_data.empty(); i++) {
    const Inode* n = with_data[rng() % with_data.size()];
    const Extent& x = n->extents[rng() % n->extents.size()];
    samples.push_back({x.physical + rng() % x.length, n->ino});
  }
  for (const auto& [owner, nodes] : our_nodes) {
    if (owner != 7 && !nodes.empty()) samples.push_back({*nodes.begin(), owner});
  }
  for (const auto& [b, owner] : our_xattr_owner) samples.push_back({b, owner});
  for (BlockKind k : {BlockKind::Superblock, BlockKind::BlockBitmap, BlockKind::InodeTable}) {
    if (!ours[k].empty()) samples.push_back({*ours[k].begin(), 0});
  }
  std::string icheck = "icheck";
  for (const auto& s2 : samples) icheck += " " + std::to_string(s2.first);
  auto out = debugfs_sections(fs_image, {icheck}, tmp.path());
  ASSERT_EQ(out.size(), 1u);
  std::map<uint64_t, std::string> owner_of;
  std::istringstream in(out[0]);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, std::regex(R"((\d+)\s+(.*))"))) owner_of[std::stoull(m[1])] = m[2];
  }
  for (const auto& [b, owner] : samples) {
    EXPECT_EQ(owner_of[b], owner ? std::to_string(owner) : "<block not found>") << "block " << b;
  }
}

TEST_P(Ext4CrawlTest, MatchesDebugfs) {
  TempDir tmp;
  const Variant& v = GetParam();
  std::string tree = tmp / "tree";
  TreeOptions opt;
  opt.xattrs = v.xattrs;
  make_tree(tree, opt);
  std::string image = tmp / "fs.img";
  int rc = 0;
  std::string out = run(std::string("mkfs.ext4 -q -F -T default -E root_owner=0:0 ") + v.mkfs_args + " -d " + quote(tree) + " " +
                            quote(image) + " " + v.size + " 2>&1",
                        &rc);
  ASSERT_EQ(rc, 0) << out;
  crawl_and_compare(image, 0, std::filesystem::file_size(image), image, tree, tmp);
}

INSTANTIATE_TEST_SUITE_P(
    Mkfs, Ext4CrawlTest,
    ::testing::Values(Variant{"default", ""}, Variant{"no_journal", "-O ^has_journal"},
                      Variant{"block1k", "-b 1024"}, Variant{"inline_data", "-O inline_data"},
                      Variant{"meta_bg", "-O meta_bg,^resize_inode"}, Variant{"no_flex_bg", "-O ^flex_bg"},
                      Variant{"inode128", "-I 128"}, Variant{"ext2", "-t ext2"}, Variant{"ext3", "-t ext3"},
                      Variant{"ext3_1k", "-t ext3 -b 1024"}, Variant{"no_64bit", "-O ^64bit"},
                      Variant{"uninit_bg", "-O ^metadata_csum,uninit_bg"},
                      Variant{"block64k", "-b 65536", true, "320M"}, Variant{"sparse_super2", "-O sparse_super2"},
                      Variant{"bigger_groups_1k", "-b 1024 -g 1024 -N 4096"}),
    [](const ::testing::TestParamInfo<Variant>& i) { return std::string(i.param.name); });

// The same file system inside MBR (sector-63 start, and a logical partition)
// and GPT partition tables; the crawler reads it at the partition's offset.
TEST(Ext4CrawlPartitioned, MbrLogicalAndGpt) {
  TempDir tmp;
  std::string tree = tmp / "tree";
  TreeOptions opt;
  opt.htree_entries = 200;
  make_tree(tree, opt);
  std::string fs = tmp / "fs.img";
  int rc = 0;
  std::string out = run("mkfs.ext4 -q -F -T default -E root_owner=0:0 -d " + quote(tree) + " " + quote(fs) + " 96M 2>&1", &rc);
  ASSERT_EQ(rc, 0) << out;
  const uint64_t fs_bytes = std::filesystem::file_size(fs);
  const uint64_t fs_sectors = fs_bytes / 512;
  struct Layout { const char* name; std::string table; uint64_t start; bool gpt; };
  std::vector<Layout> layouts = {
      {"mbr63", "label: dos\nstart=63, size=" + std::to_string(fs_sectors) + ", type=83\n", 63, false},
      {"mbr_logical",
       "label: dos\nstart=2048, size=4096, type=82\nstart=8192, size=" + std::to_string(fs_sectors + 8192) +
           ", type=5\nstart=10240, size=" + std::to_string(fs_sectors) + ", type=83\n",
       10240, false},
      {"gpt", "label: gpt\nstart=2048, size=" + std::to_string(fs_sectors) +
                  ", type=0FC63DAF-8483-4772-8E79-3D69D8E477E4\n", 2048, true},
  };
  for (const Layout& l : layouts) {
    SCOPED_TRACE(l.name);
    std::string disk = tmp / (std::string(l.name) + ".img");
    run("truncate -s " + std::to_string(fs_bytes + (l.start + 20480) * 512) + " " + quote(disk));
    std::ofstream(tmp / "table") << l.table;
    out = run("sfdisk -q " + quote(disk) + " < " + quote(tmp / "table") + " 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
    out = run("dd if=" + quote(fs) + " of=" + quote(disk) + " bs=512 seek=" + std::to_string(l.start) +
                  " conv=notrunc status=none 2>&1",
              &rc);
    ASSERT_EQ(rc, 0) << out;
    crawl_and_compare(disk, l.start * 512, fs_bytes, fs, tree, tmp);
  }
}

}  // namespace
}  // namespace dsvmi::testing

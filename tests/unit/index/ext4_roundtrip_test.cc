// Round trip against e2fsprogs: images made by mkfs.ext4 -d from generated
// trees (whole disk, MBR at sector 63, GPT), crawled into an index; every path,
// type, mode, uid/gid, size, link count, mtime, symlink target, hard-link
// group and block map must equal what debugfs reports; sampled blocks' owners
// must equal debugfs icheck; the block kinds of the group layout must equal
// dumpe2fs; gate grains must equal the metadata debugfs/dumpe2fs report.
#include <gtest/gtest.h>
#include <roaring/roaring.h>

#include "dsvmi/crawl.h"
#include "dsvmi/index.h"
#include "dsvmi/policy.h"
#include "mode_bits.h"
#include "oracle_util.h"

namespace dsvmi {
namespace {

namespace fs = std::filesystem;
using test::run;
using test::quote;

// A tree with dirs up to depth 4, empty/small/multi-block/sparse files, hard
// links, fast and slow symlinks, fifos, odd names and modes.
std::map<std::string, std::string> make_tree(const fs::path& root, uint32_t seed, int count) {
  std::mt19937 rng(seed);
  std::map<std::string, std::string> symlinks;  // path -> target
  std::vector<fs::path> dirs{root};
  std::vector<fs::path> files;
  fs::create_directories(root / "d0");
  dirs.push_back(root / "d0");
  for (int i = 0; i < count; ++i) {
    fs::path dir = dirs[rng() % dirs.size()];
    std::string name = (i % 7 == 0 ? "name with space " : i % 11 == 0 ? "caf\xc3\xa9-" : "f") + std::to_string(i);
    fs::path p = dir / name;
    int pick = rng() % 20;
    if (pick < 3 && dir.lexically_relative(root).string().size() < 40) {
      fs::create_directory(p);
      dirs.push_back(p);
    } else if (pick < 5) {
      std::string target = pick == 3 ? "target-" + std::to_string(i) : std::string(100 + rng() % 200, 'L');
      fs::create_symlink(target, p);
      symlinks["/" + p.lexically_relative(root).string()] = target;
    } else if (pick < 6 && !files.empty()) {
      fs::create_hard_link(files[rng() % files.size()], p);
    } else if (pick < 7) {
      run("mkfifo " + quote(p.string()));
    } else {
      std::ofstream f(p, std::ios::binary);
      size_t size = pick < 10 ? 0 : pick < 15 ? rng() % 5000 : rng() % 300000;
      std::string data(size, char('a' + rng() % 26));
      f.write(data.data(), data.size());
      f.close();
      if (pick == 19) fs::resize_file(p, size + 5'000'000);  // a hole at the end
      files.push_back(p);
    }
    if (!fs::is_symlink(p)) fs::permissions(p, fs::perms(rng() % 0777 | 0600), fs::perm_options::replace);
  }
  return symlinks;
}

struct Variant {
  const char* name;
  const char* mkfs_args;
  const char* table;  // "", "mbr63", "gpt"
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

class Ext4RoundTrip : public ::testing::TestWithParam<Variant> {};

TEST_P(Ext4RoundTrip, IndexEqualsDebugfs) {
  const Variant v = GetParam();
  test::TempDir tmp;
  const fs::path tree = tmp.path / "tree";
  fs::create_directories(tree);
  auto symlinks = make_tree(tree, 1234, 400);
  const std::string fsimg = (tmp.path / "fs.img").string();
  int st = 0;
  run("mkfs.ext4 -q -F " + std::string(v.mkfs_args) + " -d " + quote(tree.string()) + " " + quote(fsimg) +
          " 48M 2>&1",
      &st);
  ASSERT_EQ(st, 0) << "mkfs.ext4 failed";
  // mkfs -d leaves every i_generation 0, as the kernel never does: give some
  // inodes distinct ones (debugfs), so the index's generations are checked.
  // Only regular files without extent-tree blocks: with metadata_csum the
  // generation seeds the checksums of directory and extent-tree blocks.
  {
    std::vector<std::string> probe, sif;
    for (uint32_t ino = 12; ino < 60; ++ino) probe.push_back("stat <" + std::to_string(ino) + ">");
    auto stats = test::debugfs(fsimg, probe);
    for (uint32_t k = 0; k < stats.size(); ++k) {
      if (stats[k].find("Type: regular") == std::string::npos || stats[k].find("(ETB") != std::string::npos) continue;
      const uint32_t ino = 12 + k;
      sif.push_back("sif <" + std::to_string(ino) + "> generation " + std::to_string(ino * 2654435761u));
    }
    ASSERT_GT(sif.size(), 10u) << "too few regular files to check generations";
    const std::string cmdfile = (tmp.path / "sif.cmds").string();
    FILE* cf = std::fopen(cmdfile.c_str(), "w");
    ASSERT_NE(cf, nullptr);
    for (const auto& c : sif) std::fprintf(cf, "%s\n", c.c_str());
    std::fclose(cf);
    run("debugfs -w -f " + quote(cmdfile) + " " + quote(fsimg) + " >/dev/null 2>&1", &st);
    ASSERT_EQ(st, 0) << "debugfs sif failed";
  }
  std::string disk = fsimg;
  uint64_t offset = 0;
  if (std::string(v.table) != "") {
    disk = (tmp.path / "disk.img").string();
    run("truncate -s 52M " + quote(disk));
    if (std::string(v.table) == "mbr63") {
      offset = 63 * 512;
      run("printf 'start=63, size=98304, type=83\\n' | sfdisk -q " + quote(disk) + " >/dev/null 2>&1", &st);
    } else {
      offset = 2048 * 512;
      run("sgdisk -n 1:2048:+48M " + quote(disk) + " >/dev/null 2>&1", &st);
    }
    ASSERT_EQ(st, 0) << "partitioning failed";
    run("dd if=" + quote(fsimg) + " of=" + quote(disk) + " bs=512 seek=" + std::to_string(offset / 512) +
            " conv=notrunc status=none",
        &st);
    ASSERT_EQ(st, 0);
  }

  // Crawl through the real disk reader.
  Status s;
  auto reader = open_disk(disk, {}, &s);
  ASSERT_TRUE(reader) << s.message();
  const std::string index_path = (tmp.path / "disk.dsvx").string();
  CrawlOptions opt;
  opt.index_path = index_path;
  CrawlSummary sum;
  ASSERT_TRUE(s = crawl_disk(*reader, opt, &sum)) << s.message();
  ASSERT_EQ(sum.filesystems.size(), 1u);
  ASSERT_TRUE(sum.filesystems[0].status) << sum.filesystems[0].status.message();
  auto idx = Index::open(index_path, &s);
  ASSERT_TRUE(idx) << s.message();
  ASSERT_TRUE(s = idx->check_against(*reader)) << s.message();
  ASSERT_EQ(idx->filesystems().size(), 1u);
  const FsIndex& f = idx->filesystems()[0];
  const FilesystemInfo info = f.info();
  EXPECT_EQ(info.partition_offset, offset);

  // Walk the tree as debugfs sees it, level by level.
  std::map<uint64_t, std::vector<std::string>> paths_of;  // ino -> every path
  std::map<uint64_t, uint32_t> mode_of, uid_of, gid_of;
  std::vector<std::pair<uint64_t, std::string>> level{{2, ""}};
  size_t entries_checked = 0;
  while (!level.empty()) {
    std::vector<std::string> cmds;
    for (auto& [ino, path] : level) cmds.push_back("ls -p <" + std::to_string(ino) + ">");
    auto outs = test::debugfs(fsimg, cmds);
    ASSERT_EQ(outs.size(), level.size());
    std::vector<std::pair<uint64_t, std::string>> next;
    for (size_t k = 0; k < level.size(); ++k) {
      auto want = test::parse_ls_p(outs[k]);
      std::vector<DirEntry> got;
      ASSERT_TRUE(f.list(level[k].first, &got));
      std::map<std::string, uint64_t> got_map;
      for (auto& e : got) got_map[e.name] = e.ino;
      ASSERT_EQ(got.size(), want.size()) << "directory " << level[k].second;
      for (const auto& w : want) {
        const std::string path = level[k].second + "/" + w.name;
        ASSERT_EQ(got_map.count(w.name), 1u) << path;
        EXPECT_EQ(got_map[w.name], w.ino) << path;
        uint64_t ino = 0;
        ASSERT_TRUE(f.lookup(path, &ino)) << path;
        EXPECT_EQ(ino, w.ino);
        paths_of[w.ino].push_back(path);
        mode_of[w.ino] = w.mode;
        uid_of[w.ino] = w.uid;
        gid_of[w.ino] = w.gid;
        if ((w.mode & 0170000) == 0040000) next.push_back({w.ino, path});
        ++entries_checked;
      }
    }
    level = std::move(next);
  }
  EXPECT_GT(entries_checked, 300u);

  // Every inode: attributes, names, block map (+ the journal inode).
  std::vector<uint64_t> inos;
  for (auto& [ino, p] : paths_of) inos.push_back(ino);
  inos.push_back(2);
  if (info.journal_ino) inos.push_back(info.journal_ino);
  inos.push_back(7);  // the resize inode: its DIND block is metadata too
  std::vector<std::string> cmds;
  for (uint64_t ino : inos) cmds.push_back("stat <" + std::to_string(ino) + ">");
  auto stats = test::debugfs(fsimg, cmds);
  ASSERT_EQ(stats.size(), inos.size());
  std::set<uint64_t> dir_blocks, journal_blocks, map_blocks, xattr_blocks;
  std::map<uint64_t, std::map<uint64_t, uint64_t>> data_of;  // ino -> logical -> physical
  for (size_t k = 0; k < inos.size(); ++k) {
    const uint64_t ino = inos[k];
    const test::StatInfo want = test::parse_stat(stats[k]);
    if (ino == 7) {
      map_blocks.insert(want.map_blocks.begin(), want.map_blocks.end());
      continue;
    }
    Inode got;
    ASSERT_TRUE(f.inode(ino, &got)) << ino;
    if (mode_of.count(ino)) {
      EXPECT_EQ(got.mode, mode_of[ino] & 07777) << ino;
      EXPECT_EQ(uint32_t(got.type), uint32_t(file_type_of_mode(uint16_t(mode_of[ino])))) << ino;
      EXPECT_EQ(got.uid, uid_of[ino]);
      EXPECT_EQ(got.gid, gid_of[ino]);
    }
    EXPECT_EQ(got.size, want.size) << ino;
    EXPECT_EQ(got.links, want.links) << ino;
    EXPECT_EQ(got.generation, want.generation) << ino;
    EXPECT_EQ(got.mtime_ns / 1000000000, want.mtime) << ino;
    if (got.type == FileType::Symlink) {
      for (const auto& p : paths_of[ino]) EXPECT_EQ(got.symlink_target, symlinks[p]) << p;
      if (!want.fast_link.empty()) {
        EXPECT_EQ(got.symlink_target, want.fast_link);
      }
    }
    // Hard-link groups: the index's names are exactly the paths debugfs showed.
    if (ino != 2 && ino != info.journal_ino) {
      std::vector<std::string> names;
      ASSERT_TRUE(f.paths(ino, &names)) << ino;
      std::sort(names.begin(), names.end());
      auto want_names = paths_of[ino];
      std::sort(want_names.begin(), want_names.end());
      EXPECT_EQ(names, want_names) << ino;
    }
    std::map<uint64_t, uint64_t> got_blocks;
    for (const Extent& e : got.extents)
      for (uint64_t b = 0; b < e.length; ++b) got_blocks[e.logical + b] = e.physical + b;
    EXPECT_EQ(got_blocks, want.blocks) << "block map of inode " << ino;
    data_of[ino] = want.blocks;
    for (auto& [l, p] : want.blocks) {
      if (got.type == FileType::Directory) dir_blocks.insert(p);
      if (ino == info.journal_ino) journal_blocks.insert(p);
    }
    map_blocks.insert(want.map_blocks.begin(), want.map_blocks.end());
    if (want.file_acl) xattr_blocks.insert(want.file_acl);
    for (uint64_t b : want.map_blocks) {
      BlockOwner o;
      ASSERT_TRUE(f.owner(b, &o));
      EXPECT_EQ(int(o.kind), int(BlockKind::MapNode)) << "mapping block " << b << " of inode " << ino;
      EXPECT_EQ(o.ino, ino) << "mapping block " << b;
    }
  }

  // Group layout kinds equal dumpe2fs.
  auto layout = test::dumpe2fs_layout(fsimg);
  ASSERT_GT(layout.size(), 10u);
  const std::map<std::string, BlockKind> kinds = {{"superblock", BlockKind::Superblock},
                                                  {"gdt", BlockKind::GroupDescriptors},
                                                  {"block bitmap", BlockKind::BlockBitmap},
                                                  {"inode bitmap", BlockKind::InodeBitmap},
                                                  {"inode table", BlockKind::InodeTable}};
  for (auto& [b, kind] : layout) {
    BlockOwner o;
    ASSERT_TRUE(f.owner(b, &o));
    ASSERT_EQ(int(o.kind), int(kinds.at(kind))) << "block " << b << " is " << kind << " per dumpe2fs";
  }

  // Sampled blocks' owners equal debugfs icheck.
  std::vector<uint64_t> sample;
  for (uint64_t b = 0; b < info.block_count; b += 1 + info.block_count / 1500) sample.push_back(b);
  for (auto& [ino, m] : data_of) {
    if (m.empty()) continue;
    sample.push_back(m.begin()->second);
    sample.push_back(m.rbegin()->second);
  }
  // debugfs reads commands in short lines: 20 blocks per icheck.
  std::vector<std::string> icheck_cmds;
  for (size_t k = 0; k < sample.size(); ++k) {
    if (k % 20 == 0) icheck_cmds.push_back("icheck");
    icheck_cmds.back() += " " + std::to_string(sample[k]);
  }
  auto ic = test::debugfs(fsimg, icheck_cmds);
  ASSERT_EQ(ic.size(), icheck_cmds.size());
  std::string all_ic;
  for (auto& part : ic) all_ic += part;
  std::istringstream in(all_ic);
  std::string line;
  size_t compared = 0;
  while (std::getline(in, line)) {
    if (line.empty() || !std::isdigit((unsigned char)line[0])) continue;
    const uint64_t b = std::stoull(line);
    BlockOwner o;
    ASSERT_TRUE(f.owner(b, &o));
    if (line.find("not found") != std::string::npos) {
      EXPECT_EQ(o.ino, 0u) << "block " << b << ": icheck finds no owner";
    } else {
      const uint64_t want = std::stoull(line.substr(line.find('\t') + 1));
      // The reserved GDT blocks belong to the resize inode (7) for icheck; the
      // index files them as group descriptors (what they are for the gate).
      if (want == 7 && o.kind == BlockKind::GroupDescriptors) continue;
      EXPECT_EQ(o.ino, want) << "block " << b;
    }
    ++compared;
  }
  EXPECT_GE(compared, sample.size() / 2);

  // Metadata-only gate: exactly the grains of the metadata e2fsprogs reports.
  const uint32_t grain = info.block_size;
  auto grain_of = [&](uint64_t b, std::set<uint32_t>* out) {
    const uint64_t start = offset + b * info.block_size;
    for (uint64_t g = start / grain; g * grain < start + info.block_size; ++g) out->insert(uint32_t(g));
  };
  std::set<uint32_t> want_grains;
  for (auto& [b, k] : layout) grain_of(b, &want_grains);
  for (auto* set : {&dir_blocks, &journal_blocks, &map_blocks, &xattr_blocks})
    for (uint64_t b : *set) grain_of(b, &want_grains);
  roaring_bitmap_t* grains = roaring_bitmap_create();
  ASSERT_TRUE(build_gate_grains(*idx, {GatePolicyKind::MetadataOnly, {}}, grain, grains, nullptr));
  std::set<uint32_t> got_grains;
  roaring_iterate(grains, [](uint32_t g, void* p) { static_cast<std::set<uint32_t>*>(p)->insert(g); return true; },
                  &got_grains);
  std::vector<uint32_t> missing, extra;
  std::set_difference(want_grains.begin(), want_grains.end(), got_grains.begin(), got_grains.end(),
                      std::back_inserter(missing));
  std::set_difference(got_grains.begin(), got_grains.end(), want_grains.begin(), want_grains.end(),
                      std::back_inserter(extra));
  if (!missing.empty()) ADD_FAILURE() << missing.size() << " metadata grains missing, first " << missing[0];
  if (!extra.empty()) {
    BlockOwner o;
    (void)f.owner((uint64_t(extra[0]) * grain - offset) / info.block_size, &o);
    ADD_FAILURE() << extra.size() << " extra grains, first " << extra[0] << " (kind " << int(o.kind) << ", inode "
                  << o.ino << ")";
  }
  roaring_bitmap_free(grains);

  // Glob gate: data of files with a path under /d0 passes, other data drops.
  grains = roaring_bitmap_create();
  ASSERT_TRUE(build_gate_grains(*idx, {GatePolicyKind::MetadataAndGlobs, {"/d0/**"}}, grain, grains, nullptr));
  size_t passed = 0, dropped = 0;
  // Grains that must pass: metadata, and every grain of a matching file's
  // blocks. A grain a dropped block shares with those (unaligned partition)
  // passes too; every other grain of a non-matching file must be dropped.
  std::set<uint32_t> must_pass = want_grains;
  auto is_data_file = [&](uint64_t ino) {
    return ino != info.journal_ino && ino != 2 && (mode_of[ino] & 0170000) != 0040000;
  };
  auto under_d0 = [&](uint64_t ino) {
    for (auto& p : paths_of[ino])
      if (p.rfind("/d0/", 0) == 0) return true;
    return false;
  };
  for (auto& [ino, m] : data_of)
    if (is_data_file(ino) && under_d0(ino))
      for (auto& [l, b] : m) grain_of(b, &must_pass);
  for (auto& [ino, m] : data_of) {
    if (!is_data_file(ino)) continue;
    const bool under = under_d0(ino);
    for (auto& [l, b] : m) {
      std::set<uint32_t> gs;
      grain_of(b, &gs);
      for (uint32_t g : gs)
        EXPECT_EQ(roaring_bitmap_contains(grains, g), must_pass.count(g) == 1)
            << "grain " << g << " of data block " << b << " of inode " << ino;
      (under ? passed : dropped)++;
    }
  }
  EXPECT_GT(passed, 0u);
  EXPECT_GT(dropped, 0u);
  roaring_bitmap_free(grains);
}

INSTANTIATE_TEST_SUITE_P(
    Images, Ext4RoundTrip,
    ::testing::Values(Variant{"ext4_4k", "-b 4096", ""}, Variant{"ext4_1k_nojournal", "-b 1024 -O ^has_journal", ""},
                      Variant{"ext3_indirect", "-t ext3 -b 2048", "mbr63"},
                      Variant{"ext4_meta_bg_gpt", "-O meta_bg,^resize_inode -I 128", "gpt"}),
    [](const auto& p) { return std::string(p.param.name); });

// A re-formatted or since-written file system makes the index stale.
TEST(Ext4Stale, ReformattedOrWrittenImageIsRefused) {
  test::TempDir tmp;
  const std::string img = (tmp.path / "disk.img").string();
  int st;
  run("mkfs.ext4 -q -F " + quote(img) + " 8M 2>&1", &st);
  ASSERT_EQ(st, 0);
  const std::string index_path = (tmp.path / "disk.dsvx").string();
  {
    Status s;
    auto reader = open_disk(img, {}, &s);
    ASSERT_TRUE(reader);
    CrawlOptions opt;
    opt.index_path = index_path;
    CrawlSummary sum;
    ASSERT_TRUE(crawl_disk(*reader, opt, &sum));
  }
  auto check = [&]() {
    Status s;
    auto reader = open_disk(img, {}, &s);
    auto idx = Index::open(index_path, &s);
    EXPECT_TRUE(reader && idx);
    return idx->check_against(*reader);
  };
  EXPECT_TRUE(check());
  run("debugfs -w -R 'mkdir /newdir' " + quote(img) + " 2>&1", &st);
  Status s = check();
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("stale index"), std::string::npos) << s.message();
  run("mkfs.ext4 -q -F " + quote(img) + " 8M 2>&1", &st);
  s = check();
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("re-formatted"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace dsvmi

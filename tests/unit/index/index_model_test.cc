// The index against a reference model: a random file system is replayed into
// IndexBuilder as shuffled CrawlSink calls; everything read back through the
// Index (lazy records, directory listings, path lookups, hard links, the
// reverse map of every block, gate grains) must equal the plain-container
// model the calls came from.
#include <gtest/gtest.h>
#include <roaring/roaring.h>

#include <set>

#include "dsvmi/index.h"
#include "dsvmi/index_builder.h"
#include "dsvmi/policy.h"
#include "synthetic_fs.h"

namespace dsvmi {
namespace {

std::unique_ptr<Index> build(const test::SyntheticFs& fs, uint32_t seed, std::vector<uint8_t>* bytes) {
  IndexBuilder b({"synthetic", fs.info.partition_offset + fs.info.partition_size}, nullptr);
  fs.replay(b, seed);
  Status s = b.finish(bytes);
  EXPECT_TRUE(s) << s.message();
  auto idx = Index::from_bytes(bytes->data(), bytes->size(), &s);
  EXPECT_TRUE(idx) << s.message();
  return idx;
}

int64_t secs(int64_t ns) { return ns / 1000000000; }

class IndexModel : public ::testing::TestWithParam<uint32_t> {};

TEST_P(IndexModel, EveryRecordEqualsTheModel) {
  const uint32_t seed = GetParam();
  auto fs = test::make_synthetic_fs(seed, 2000, 1 << 20, 4096);
  std::vector<uint8_t> bytes;
  auto idx = build(fs, seed, &bytes);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->filesystems().size(), 1u);
  const FsIndex& f = idx->filesystems()[0];
  EXPECT_EQ(f.info().uuid, fs.info.uuid);
  EXPECT_EQ(f.indexed_inodes(), fs.inodes.size());

  for (const auto& [ino, want] : fs.inodes) {
    Inode got;
    ASSERT_TRUE(f.inode(ino, &got)) << ino;
    EXPECT_EQ(got.type, want.type) << ino;
    EXPECT_EQ(got.mode, want.mode) << ino;
    EXPECT_EQ(got.uid, want.uid);
    EXPECT_EQ(got.gid, want.gid);
    EXPECT_EQ(got.links, want.links) << ino;
    EXPECT_EQ(got.size, want.size) << ino;
    EXPECT_EQ(got.rdev, want.rdev) << ino;
    EXPECT_EQ(secs(got.mtime_ns), secs(want.mtime_ns));
    EXPECT_EQ(secs(got.ctime_ns), secs(want.ctime_ns));
    EXPECT_EQ(got.symlink_target, want.symlink_target);
    ASSERT_EQ(got.extents.size(), want.extents.size()) << ino;
    for (size_t k = 0; k < got.extents.size(); ++k) {
      EXPECT_EQ(got.extents[k].logical, want.extents[k].logical);
      EXPECT_EQ(got.extents[k].physical, want.extents[k].physical);
      EXPECT_EQ(got.extents[k].length, want.extents[k].length);
      EXPECT_EQ(got.extents[k].unwritten, want.extents[k].unwritten);
    }
  }
  Inode none;
  EXPECT_FALSE(f.inode(1, &none));
  EXPECT_FALSE(f.inode(999999, &none));

  // Listings and lookups.
  for (const auto& [dir, entries] : fs.dirs) {
    std::vector<DirEntry> got;
    ASSERT_TRUE(f.list(dir, &got));
    ASSERT_EQ(got.size(), entries.size());
    size_t k = 0;
    for (const auto& [name, e] : entries) {
      EXPECT_EQ(got[k].name, name);
      EXPECT_EQ(got[k].ino, e.ino);
      EXPECT_EQ(got[k].type, e.type);
      ++k;
    }
  }
  for (const auto& [ino, path] : fs.path_of) {
    uint64_t found = 0;
    ASSERT_TRUE(f.lookup(path, &found)) << path;
    EXPECT_EQ(found, ino) << path;
  }
  uint64_t dummy;
  EXPECT_FALSE(f.lookup("/no/such/path", &dummy));
  EXPECT_FALSE(f.lookup("relative", &dummy));

  // Names: every link of every inode, and a path for each.
  std::map<uint64_t, std::set<std::pair<uint64_t, std::string>>> want_links;
  for (const auto& [dir, entries] : fs.dirs)
    for (const auto& [name, e] : entries) want_links[e.ino].insert({dir, name});
  for (const auto& [ino, want] : want_links) {
    std::vector<Link> got;
    ASSERT_TRUE(f.links(ino, &got));
    std::set<std::pair<uint64_t, std::string>> got_set;
    for (auto& l : got) got_set.insert({l.parent, l.name});
    EXPECT_EQ(got_set, want) << ino;
    std::vector<std::string> paths;
    ASSERT_TRUE(f.paths(ino, &paths));
    EXPECT_EQ(paths.size(), want.size());
    for (const auto& p : paths) {
      uint64_t back = 0;
      ASSERT_TRUE(f.lookup(p, &back)) << p;
      EXPECT_EQ(back, ino) << p;
    }
  }

  // Reverse map: every block.
  for (uint64_t b = 0; b < fs.info.block_count; ++b) {
    BlockOwner got;
    ASSERT_TRUE(f.owner(b, &got));
    const BlockOwner& want = fs.blocks[b];
    ASSERT_EQ(int(got.kind), int(want.kind)) << "block " << b;
    ASSERT_EQ(got.ino, want.ino) << "block " << b;
    if (want.kind == BlockKind::FileData || want.kind == BlockKind::Directory || want.kind == BlockKind::Journal) {
      ASSERT_EQ(got.logical, want.logical) << "block " << b;
    }
  }
  BlockOwner beyond;
  EXPECT_FALSE(f.owner(fs.info.block_count, &beyond));
}

INSTANTIATE_TEST_SUITE_P(Seeds, IndexModel, ::testing::Values(1u, 2u, 3u));

// Gate grains against a brute-force model: every metadata block's byte range
// mapped to grains one byte-grain at a time, for unaligned partitions and
// grains smaller and larger than a block.
TEST(IndexPolicy, MetadataGrainsEqualBruteForce) {
  for (uint64_t offset : {uint64_t(1) << 20, uint64_t(63) * 512}) {
    for (uint32_t bs : {1024u, 4096u}) {
      auto fs = test::make_synthetic_fs(7, 300, offset, bs);
      std::vector<uint8_t> bytes;
      auto idx = build(fs, 7, &bytes);
      ASSERT_TRUE(idx);
      for (uint32_t grain : {512u, 4096u, 65536u}) {
        std::set<uint32_t> want;
        for (uint64_t b = 0; b < fs.info.block_count; ++b) {
          const BlockKind k = fs.blocks[b].kind;
          if (k == BlockKind::Free || k == BlockKind::FileData || k == BlockKind::Reserved) continue;
          const uint64_t start = offset + b * bs;
          for (uint64_t g = start / grain; g * grain < start + bs; ++g) want.insert(uint32_t(g));
        }
        roaring_bitmap_t* got = roaring_bitmap_create();
        GatePolicyStats st;
        ASSERT_TRUE(build_gate_grains(*idx, {GatePolicyKind::MetadataOnly, {}}, grain, got, &st));
        EXPECT_EQ(st.grains, want.size());
        std::set<uint32_t> got_set;
        roaring_iterate(got, [](uint32_t v, void* p) { static_cast<std::set<uint32_t>*>(p)->insert(v); return true; },
                        &got_set);
        EXPECT_EQ(got_set, want) << "offset " << offset << " bs " << bs << " grain " << grain;
        roaring_bitmap_free(got);
      }
    }
  }
}

TEST(IndexPolicy, GlobPassesDataOfMatchingFilesOnly) {
  auto fs = test::make_synthetic_fs(11, 1500, 1 << 20, 4096);
  std::vector<uint8_t> bytes;
  auto idx = build(fs, 11, &bytes);
  ASSERT_TRUE(idx);
  // Files whose some path has a component starting with "f1": "**/f1*".
  std::set<uint64_t> matching;
  for (const auto& [dir, entries] : fs.dirs)
    for (const auto& [name, e] : entries)
      if ((e.type == FileType::Regular || e.type == FileType::Symlink) && name.rfind("f1", 0) == 0) matching.insert(e.ino);
  roaring_bitmap_t* grains = roaring_bitmap_create();
  GatePolicyStats st;
  ASSERT_TRUE(build_gate_grains(*idx, {GatePolicyKind::MetadataAndGlobs, {"**/f1*"}}, 4096, grains, &st));
  EXPECT_EQ(st.matched_files, [&] {
    size_t n = 0;
    for (uint64_t i : matching) n += fs.inodes.count(i);
    return n;
  }());
  size_t checked = 0;
  for (uint64_t b = 0; b < fs.info.block_count; ++b) {
    const BlockOwner& o = fs.blocks[b];
    if (o.kind != BlockKind::FileData) continue;
    const uint32_t g = uint32_t((fs.info.partition_offset + b * 4096) / 4096);
    EXPECT_EQ(roaring_bitmap_contains(grains, g), matching.count(o.ino) == 1) << "block " << b << " ino " << o.ino;
    ++checked;
  }
  EXPECT_GT(checked, 100u);
  roaring_bitmap_free(grains);

  roaring_bitmap_t* all = roaring_bitmap_create();
  ASSERT_TRUE(build_gate_grains(*idx, {GatePolicyKind::PassAll, {}}, 4096, all, &st));
  EXPECT_EQ(roaring_bitmap_get_cardinality(all), (idx->disk_size() + 4095) / 4096);
  roaring_bitmap_free(all);
}

}  // namespace
}  // namespace dsvmi

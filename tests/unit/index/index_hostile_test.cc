// The index file is untrusted (it derives from guest data): truncated,
// bit-flipped and foreign files must give a clear error or, where the damage
// is inside record payloads the verifier cannot see, answers that are merely
// wrong; never a crash (this test also runs under ASan/UBSan).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <roaring/roaring.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "dsvmi/index.h"
#include "dsvmi/index_builder.h"
#include "roaring_check.h"
#include "synthetic_fs.h"

namespace dsvmi {
namespace {

std::vector<uint8_t> valid_index() {
  auto fs = test::make_synthetic_fs(5, 300, 1 << 20, 4096);
  IndexBuilder b({"synthetic", fs.info.partition_offset + fs.info.partition_size}, nullptr);
  fs.replay(b, 5);
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(b.finish(&bytes));
  return bytes;
}

// Touches every read path of an index that opened.
void exercise(const Index& idx) {
  for (const FsIndex& f : idx.filesystems()) {
    const FilesystemInfo info = f.info();
    std::vector<DirEntry> entries;
    std::vector<std::string> paths;
    Inode in;
    for (uint64_t ino = 0; ino < 400; ++ino) {
      (void)f.inode(ino, &in);
      (void)f.list(ino, &entries);
      (void)f.paths(ino, &paths);
    }
    uint64_t ino;
    (void)f.lookup("/f1", &ino);
    (void)f.lookup("/a/b/../c", &ino);
    BlockOwner o;
    for (uint64_t b = 0; b < std::min<uint64_t>(info.block_count, 20000); b += 7) (void)f.owner(b, &o);
    (void)f.problems();
  }
}

TEST(IndexHostile, EveryTruncationIsRefused) {
  const auto bytes = valid_index();
  for (size_t n = 0; n < bytes.size(); n += (n < 256 ? 1 : 97)) {
    Status s;
    auto idx = Index::from_bytes(bytes.data(), n, &s);
    EXPECT_FALSE(idx) << "truncated to " << n << " bytes";
    EXPECT_FALSE(s.message().empty());
  }
}

TEST(IndexHostile, FlippedBytesNeverCrash) {
  const auto good = valid_index();
  std::mt19937 rng(42);
  int refused = 0, opened = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    auto bytes = good;
    const int flips = 1 + rng() % 4;
    for (int k = 0; k < flips; ++k) bytes[rng() % bytes.size()] ^= uint8_t(1 + rng() % 255);
    Status s;
    auto idx = Index::from_bytes(bytes.data(), bytes.size(), &s);
    if (!idx) {
      ++refused;
      EXPECT_FALSE(s.message().empty());
      continue;
    }
    ++opened;
    exercise(*idx);
  }
  // Both outcomes must occur: damage in headers/offsets is refused, damage in
  // record payloads (names, sizes) is only detectable per record.
  EXPECT_GT(refused, 0);
  EXPECT_GT(opened, 0);
}

TEST(IndexHostile, ClearErrorsForMissingAndForeignFiles) {
  Status s;
  EXPECT_FALSE(Index::open("/nonexistent/x.dsvx", &s));
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s.message();

  char path[] = "/tmp/dsvmi-index-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string junk(4096, 'j');
  ASSERT_EQ(write(fd, junk.data(), junk.size()), ssize_t(junk.size()));
  close(fd);
  EXPECT_FALSE(Index::open(path, &s));
  EXPECT_NE(s.message().find("not a dsvmi index"), std::string::npos) << s.message();

  // A valid index written and opened through the file path (mmap).
  const auto bytes = valid_index();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  auto idx = Index::open(path, &s);
  ASSERT_TRUE(idx) << s.message();
  EXPECT_EQ(idx->filesystems().size(), 1u);
  unlink(path);
}

// The Roaring validator accepts what CRoaring writes and refuses (or lets
// through only harmlessly) mutations of it.
TEST(IndexHostile, RoaringValidator) {
  std::mt19937 rng(9);
  for (int iter = 0; iter < 300; ++iter) {
    roaring_bitmap_t* b = roaring_bitmap_create();
    const int shape = iter % 3;
    for (int k = 0; k < 50; ++k) {
      uint32_t v = rng() % 400000;
      if (shape == 0) roaring_bitmap_add(b, v);
      if (shape == 1) roaring_bitmap_add_range_closed(b, v, v + rng() % 5000);
      if (shape == 2) for (int j = 0; j < 200; ++j) roaring_bitmap_add(b, v + rng() % 8000);
    }
    if (iter % 2) roaring_bitmap_run_optimize(b);
    std::vector<uint8_t> buf(roaring_bitmap_portable_size_in_bytes(b));
    roaring_bitmap_portable_serialize(b, reinterpret_cast<char*>(buf.data()));
    ASSERT_TRUE(check_roaring_portable(buf.data(), buf.size(), 1ull << 32)) << iter;
    EXPECT_FALSE(check_roaring_portable(buf.data(), buf.size(), 1000));  // values beyond the limit
    EXPECT_FALSE(check_roaring_portable(buf.data(), buf.size() - 1, 1ull << 32));
    for (int m = 0; m < 20; ++m) {
      auto bad = buf;
      bad[rng() % bad.size()] ^= uint8_t(1 + rng() % 255);
      if (check_roaring_portable(bad.data(), bad.size(), 1ull << 32)) {
        roaring_bitmap_t* r = roaring_bitmap_portable_deserialize_safe(reinterpret_cast<const char*>(bad.data()), bad.size());
        ASSERT_NE(r, nullptr);
        uint64_t n = 0;
        roaring_iterate(r, [](uint32_t, void* p) { ++*static_cast<uint64_t*>(p); return true; }, &n);
        EXPECT_EQ(n, roaring_bitmap_get_cardinality(r));
        roaring_bitmap_free(r);
      }
    }
    roaring_bitmap_free(b);
  }
}

}  // namespace
}  // namespace dsvmi

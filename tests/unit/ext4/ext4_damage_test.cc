// Damaged and hostile ext4 images: each must give a Status error or a partial
// crawl whose problems name the damage; never a crash or a hang.
// Images come from mkfs.ext4; damage is applied with debugfs -w or by
// patching bytes at documented on-disk offsets.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "dsvmi/disk_reader.h"
#include "dsvmi/ext4.h"
#include "image_tools.h"

namespace dsvmi::testing {
namespace {

class Ext4DamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = tmp_ / "tree";
    std::filesystem::create_directories(tree_ + "/dir");
    std::ofstream(tree_ + "/dir/file") << "data";
    // A file of 600 one-block islands: its extent tree has index nodes.
    int fd = ::open((tree_ + "/fragmented").c_str(), O_WRONLY | O_CREAT, 0644);
    std::string block(4096, 'f');
    for (int i = 0; i < 600; i++) ASSERT_EQ(pwrite(fd, block.data(), 4096, off_t{i} * 8192), 4096);
    ::close(fd);
    image_ = tmp_ / "fs.img";
    int rc = 0;
    std::string out = run("mkfs.ext4 -q -F -T default -b 4096 -d " + quote(tree_) + " " + quote(image_) + " 32M 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
  }

  Status crawl(RecordingSink* sink) {
    Status err;
    auto disk = open_disk(image_, DiskReaderOptions{}, &err);
    if (!disk) return err;
    return crawl_ext4(*disk, 0, disk->size(), *sink);
  }

  void debugfs_w(const std::string& cmd) {
    int rc = 0;
    std::string out = run("debugfs -w -R " + quote(cmd) + " " + quote(image_) + " 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
  }

  void patch(uint64_t offset, const std::string& bytes) {
    int fd = ::open(image_.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  static std::string le32(uint32_t v) {
    return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)};
  }

  uint64_t ino_of(const std::string& path) {
    std::string out = run("debugfs -R " + quote("stat " + path) + " " + quote(image_) + " 2>/dev/null");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(out, m, std::regex(R"(Inode: (\d+))")));
    return std::stoull(m[1]);
  }

  bool has_problem(const RecordingSink& s, const std::string& text) {
    for (const auto& p : s.problems) if (p.what.find(text) != std::string::npos) return true;
    return false;
  }

  TempDir tmp_;
  std::string tree_, image_;
};

TEST_F(Ext4DamageTest, NotAnExtFileSystem) {
  patch(1024 + 0x38, std::string(2, '\0'));
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("no superblock magic"), std::string::npos) << s.message();
  EXPECT_EQ(sink.begins, 0);
}

TEST_F(Ext4DamageTest, BlocksPerGroupZero) {
  patch(1024 + 0x20, le32(0));
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("blocks per group 0"), std::string::npos) << s.message();
}

TEST_F(Ext4DamageTest, AbsurdInodeCount) {
  patch(1024 + 0x00, le32(0xFFFFFFF0u));
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("inode count"), std::string::npos) << s.message();
}

TEST_F(Ext4DamageTest, AbsurdBlockCount) {
  patch(1024 + 0x04, le32(0xFFFFFFF0u));
  patch(1024 + 0x150, le32(0x1000));
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("far beyond the partition"), std::string::npos) << s.message();
}

TEST_F(Ext4DamageTest, TruncatedDisk) {
  ASSERT_EQ(truncate(image_.c_str(), 12 << 20), 0);
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_TRUE(s) << s.message();
  EXPECT_TRUE(has_problem(sink, "truncated")) << sink.problems_text();
  EXPECT_EQ(sink.ends, 1);
}

TEST_F(Ext4DamageTest, CorruptedGroupDescriptors) {
  // 4 KiB blocks: the descriptor table is block 1. Fill it with 0xFF.
  patch(4096, std::string(4096, '\xff'));
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("no group descriptor is valid"), std::string::npos) << s.message();
  EXPECT_TRUE(has_problem(sink, "descriptor points outside the file system")) << sink.problems_text();
  EXPECT_TRUE(has_problem(sink, "descriptor checksum mismatch")) << sink.problems_text();
}

TEST_F(Ext4DamageTest, ExtentIndexReferencedTwice) {
  uint64_t ino = ino_of("/fragmented");
  // i_block words: header (0-2), then index entries of 3 words: block,
  // leaf_lo, leaf_hi. Point entry 1 at entry 0's leaf: a shared subtree.
  std::string out = run("debugfs -R " + quote("stat <" + std::to_string(ino) + ">") + " " + quote(image_) + " 2>/dev/null");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(\(ETB0\):(\d+))"))) << out;
  debugfs_w("sif <" + std::to_string(ino) + "> block[7] " + m[1].str());
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_TRUE(s) << s.message();
  EXPECT_TRUE(has_problem(sink, "referenced twice (loop)") || has_problem(sink, "index keys are not increasing") ||
              has_problem(sink, "overlaps or precedes"))
      << sink.problems_text();
  EXPECT_TRUE(sink.inodes.count(ino));
}

TEST_F(Ext4DamageTest, ExtentPointingOutsideTheDisk) {
  uint64_t ino = ino_of("/fragmented");
  debugfs_w("sif <" + std::to_string(ino) + "> block[4] 4000000000");
  RecordingSink sink;
  Status s = crawl(&sink);
  ASSERT_TRUE(s) << s.message();
  EXPECT_TRUE(has_problem(sink, "lies outside the file system")) << sink.problems_text();
}

TEST_F(Ext4DamageTest, ExtentHeaderGarbage) {
  uint64_t ino = ino_of("/fragmented");
  debugfs_w("sif <" + std::to_string(ino) + "> block[0] 0x7fff1234");
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_TRUE(has_problem(sink, "bad header magic")) << sink.problems_text();
}

TEST_F(Ext4DamageTest, DirectoryLinkedIntoItself) {
  debugfs_w("link /dir /dir/self");
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_TRUE(has_problem(sink, "contains itself as 'self'")) << sink.problems_text();
}

TEST_F(Ext4DamageTest, DirectoryBlockGarbage) {
  std::string out = run("debugfs -R " + quote("stat /dir") + " " + quote(image_) + " 2>/dev/null");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(\(0\):(\d+))"))) << out;
  patch(std::stoull(m[1]) * 4096, std::string(64, '\x03'));
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_TRUE(has_problem(sink, "directory: bad rec_len")) << sink.problems_text();
}

TEST_F(Ext4DamageTest, InodeChecksumMismatchIsReportedNotFatal) {
  uint64_t ino = ino_of("/dir/file");
  // Flip a byte of the inode's mtime behind debugfs's back.
  std::string out = run("debugfs -R " + quote("imap <" + std::to_string(ino) + ">") + " " + quote(image_) + " 2>/dev/null");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(located at block (\d+), offset 0x([0-9a-f]+))"))) << out;
  uint64_t at = std::stoull(m[1]) * 4096 + std::stoull(m[2], nullptr, 16);
  patch(at + 0x10, "\x01");
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_TRUE(has_problem(sink, "inode checksum mismatch")) << sink.problems_text();
  EXPECT_TRUE(sink.inodes.count(ino));
}

}  // namespace
}  // namespace dsvmi::testing

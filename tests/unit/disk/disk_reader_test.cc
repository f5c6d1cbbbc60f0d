// The liburing reader against pread(2) on the same file (the kernel's plain
// read path is the reference): random batches of unaligned reads, buffered
// and O_DIRECT, at several queue depths.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "../ext4/image_tools.h"
#include "dsvmi/disk_reader.h"

namespace dsvmi::testing {
namespace {

class DiskReaderTest : public ::testing::TestWithParam<std::tuple<bool, unsigned>> {
 protected:
  void SetUp() override {
    path_ = tmp_ / "disk.img";
    std::mt19937_64 rng(1);
    std::vector<unsigned char> bytes((5u << 20) + 123);  // not a multiple of 4 KiB
    for (auto& b : bytes) b = static_cast<unsigned char>(rng());
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    size_ = bytes.size();
  }
  std::vector<std::byte> reference(uint64_t offset, size_t n) {
    std::vector<std::byte> out(n);
    int fd = ::open(path_.c_str(), O_RDONLY);
    EXPECT_EQ(pread(fd, out.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    ::close(fd);
    return out;
  }
  TempDir tmp_;
  std::string path_;
  uint64_t size_ = 0;
};

TEST_P(DiskReaderTest, RandomBatchesMatchPread) {
  auto [direct, depth] = GetParam();
  Status err;
  auto disk = open_disk(path_, DiskReaderOptions{direct, depth}, &err);
  if (!disk && direct) GTEST_SKIP() << "O_DIRECT unsupported here: " << err.message();
  ASSERT_TRUE(disk) << err.message();
  EXPECT_EQ(disk->size(), size_);
  EXPECT_EQ(disk->describe(), path_);
  std::mt19937_64 rng(direct * 100 + depth);
  for (int round = 0; round < 20; round++) {
    size_t count = 1 + rng() % 64;
    std::vector<std::vector<std::byte>> bufs(count);
    std::vector<ReadRequest> reqs;
    for (size_t i = 0; i < count; i++) {
      size_t n = rng() % 4 == 0 ? rng() % (1500u << 10) : rng() % 9000;
      n = std::min<uint64_t>(n, size_);
      uint64_t off = rng() % (size_ - n + 1);
      if (i == 0) off = size_ - n;  // always one read ending at the last byte
      bufs[i].assign(n, std::byte{0xEE});
      reqs.push_back(ReadRequest{off, bufs[i]});
    }
    Status s = disk->read_batch(reqs);
    ASSERT_TRUE(s) << s.message();
    for (size_t i = 0; i < count; i++) {
      ASSERT_TRUE(bufs[i] == reference(reqs[i].offset, bufs[i].size()))
          << "round " << round << " request " << i << " offset " << reqs[i].offset << " size " << bufs[i].size();
    }
  }
}

TEST_P(DiskReaderTest, PastTheEndIsAnError) {
  auto [direct, depth] = GetParam();
  Status err;
  auto disk = open_disk(path_, DiskReaderOptions{direct, depth}, &err);
  if (!disk && direct) GTEST_SKIP() << err.message();
  ASSERT_TRUE(disk) << err.message();
  std::vector<std::byte> buf(10);
  Status s = disk->read(size_ - 5, buf);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("past the end"), std::string::npos) << s.message();
  s = disk->read(~uint64_t{0} - 3, buf);
  ASSERT_FALSE(s);
}

INSTANTIATE_TEST_SUITE_P(Modes, DiskReaderTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(1u, 4u, 32u)));

TEST(DiskReaderOpen, MissingFileNamesThePath) {
  Status err;
  auto disk = open_disk("/nonexistent/dsvmi.img", DiskReaderOptions{}, &err);
  EXPECT_FALSE(disk);
  EXPECT_NE(err.message().find("/nonexistent/dsvmi.img"), std::string::npos) << err.message();
}

TEST(DiskReaderOpen, NbdUriWithoutServerFailsCleanly) {
  TempDir tmp;
  Status err;
  auto disk = open_disk("nbd+unix:///?socket=" + tmp.path() + "/none.sock", DiskReaderOptions{}, &err);
  EXPECT_FALSE(disk);
  EXPECT_NE(err.message().find("nbd: cannot connect"), std::string::npos) << err.message();
}

}  // namespace
}  // namespace dsvmi::testing

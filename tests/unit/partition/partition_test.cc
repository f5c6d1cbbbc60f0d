// Partition tables written by sfdisk/sgdisk, read back by read_partition_table
// and compared with what `sfdisk -d` says is on the disk. Damage is applied by
// patching bytes at the GPT/EBR offsets the specs define.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "../ext4/image_tools.h"
#include "dsvmi/memory_reader.h"
#include "dsvmi/partition.h"

namespace dsvmi::testing {
namespace {

struct SfdiskEntry {
  uint32_t number;
  uint64_t start, size;
  std::string type, uuid, name;
};

// `sfdisk -d` lines: "<dev>N : start= S, size= Z, type=T[, uuid=U][, name="N"]".
std::vector<SfdiskEntry> sfdisk_dump(const std::string& image) {
  std::vector<SfdiskEntry> out;
  std::istringstream in(run("sfdisk -d " + quote(image) + " 2>/dev/null"));
  std::string line;
  std::regex re(R"re(^\S*?(\d+) : start=\s*(\d+), size=\s*(\d+), type=([0-9A-Fa-f-]+)(?:, uuid=([0-9A-Fa-f-]+))?(?:, name="([^"]*)")?)re");
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, re)) continue;
    out.push_back({static_cast<uint32_t>(std::stoul(m[1])), std::stoull(m[2]), std::stoull(m[3]), m[4], m[5], m[6]});
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class PartitionTest : public ::testing::Test {
 protected:
  std::string disk(const std::string& name, const char* size = "64M") {
    std::string p = tmp_ / name;
    run("truncate -s " + std::string(size) + " " + quote(p));
    return p;
  }
  void sfdisk(const std::string& image, const std::string& script) {
    std::ofstream(tmp_ / "script") << script;
    int rc = 0;
    std::string out = run("sfdisk -q " + quote(image) + " < " + quote(tmp_ / "script") + " 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
  }
  Status read(const std::string& image, PartitionTable* t) {
    Status err;
    auto d = open_disk(image, DiskReaderOptions{}, &err);
    if (!d) return err;
    return read_partition_table(*d, t);
  }
  void patch(const std::string& image, uint64_t offset, const std::string& bytes) {
    int fd = ::open(image.c_str(), O_WRONLY);
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  void expect_same(const PartitionTable& t, const std::vector<SfdiskEntry>& want, bool gpt) {
    ASSERT_EQ(t.partitions.size(), want.size());
    for (size_t i = 0; i < want.size(); i++) {
      const Partition& p = t.partitions[i];
      SCOPED_TRACE("partition " + std::to_string(want[i].number));
      EXPECT_EQ(p.number, want[i].number);
      EXPECT_EQ(p.offset, want[i].start * 512);
      EXPECT_EQ(p.size, want[i].size * 512);
      if (gpt) {
        EXPECT_EQ(p.type_guid, lower(want[i].type));
        EXPECT_EQ(p.unique_guid, lower(want[i].uuid));
        EXPECT_EQ(p.name, want[i].name);
      } else {
        EXPECT_EQ(p.mbr_type, std::stoul(want[i].type, nullptr, 16));
      }
    }
  }
  static bool has_warning(const PartitionTable& t, const std::string& text) {
    for (const auto& w : t.warnings) if (w.find(text) != std::string::npos) return true;
    return false;
  }
  TempDir tmp_;
};

TEST_F(PartitionTest, MbrPrimariesAndLogicalChain) {
  std::string img = disk("mbr.img");
  sfdisk(img,
         "label: dos\n"
         "start=63, size=2000, type=83\n"
         "start=4096, size=8192, type=82\n"
         "start=16384, size=100000, type=5\n"
         "start=18432, size=20480, type=83\n"
         "start=40960, size=4096, type=7\n"
         "start=47104, size=30000, type=83\n");
  // An ext4 in logical partition 5, a swap signature in primary 2.
  int rc = 0;
  run("mkfs.ext4 -q -F " + quote(tmp_ / "fs") + " 10M", &rc);
  ASSERT_EQ(rc, 0);
  run("dd if=" + quote(tmp_ / "fs") + " of=" + quote(img) + " bs=512 seek=18432 conv=notrunc status=none");
  run("mkswap -q " + quote(tmp_ / "swap") + " 2>/dev/null || (truncate -s 4M " + quote(tmp_ / "swap") + " && mkswap " +
      quote(tmp_ / "swap") + ") >/dev/null 2>&1");
  run("dd if=" + quote(tmp_ / "swap") + " of=" + quote(img) + " bs=512 seek=4096 count=8192 conv=notrunc status=none");
  PartitionTable t;
  Status s = read(img, &t);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(t.scheme, PartitionScheme::Mbr);
  auto want = sfdisk_dump(img);
  // sfdisk -d lists the extended container too; we record only data partitions.
  want.erase(std::remove_if(want.begin(), want.end(), [](const SfdiskEntry& e) { return e.type == "5"; }), want.end());
  expect_same(t, want, false);
  EXPECT_TRUE(t.warnings.empty());
  ASSERT_EQ(t.partitions.size(), 5u);  // 1, 2, then logicals 5, 6, 7
  EXPECT_EQ(t.partitions[2].number, 5u);
  EXPECT_EQ(t.partitions[2].filesystem, "ext4");
  EXPECT_TRUE(t.partitions[2].logical);
  EXPECT_EQ(t.partitions[1].filesystem, "swap");
  EXPECT_EQ(t.partitions[0].filesystem, "");
}

TEST_F(PartitionTest, LoopingExtendedChainStops) {
  std::string img = disk("loop.img");
  sfdisk(img,
         "label: dos\n"
         "start=2048, size=100000, type=5\n"
         "start=4096, size=2048, type=83\n"
         "start=8192, size=2048, type=83\n");
  // The second EBR (sector 8192 - 2048 = 6144 by sfdisk's layout, found from
  // the first EBR's link) gets a link back to the first EBR (relative 0).
  std::ifstream f(img, std::ios::binary);
  std::vector<char> ebr(512);
  f.seekg(2048 * 512);
  f.read(ebr.data(), 512);
  uint32_t next_rel = static_cast<unsigned char>(ebr[446 + 16 + 8]) | static_cast<unsigned char>(ebr[446 + 16 + 9]) << 8 |
                      static_cast<unsigned char>(ebr[446 + 16 + 10]) << 16;
  ASSERT_GT(next_rel, 0u);
  uint64_t second = 2048 + next_rel;
  // Entry 1 of the second EBR: type 5, start 0 (= the first EBR), size 1.
  std::string link(16, '\0');
  link[4] = 5;
  link[12] = 1;
  patch(img, second * 512 + 446 + 16, link);
  PartitionTable t;
  ASSERT_TRUE(read(img, &t));
  EXPECT_EQ(t.partitions.size(), 2u);
  EXPECT_TRUE(has_warning(t, "loops back to the EBR at sector 2048")) << ::testing::PrintToString(t.warnings);
}

TEST_F(PartitionTest, GptWrittenBySgdisk) {
  std::string img = disk("gpt.img");
  int rc = 0;
  std::string out = run("sgdisk -n 1:2048:+8M -t 1:8300 -c 1:root -n 2:0:+4M -t 2:8200 -c 2:swap -n 3:0:+1M -t 3:ef00 " +
                            quote(img) + " 2>&1",
                        &rc);
  ASSERT_EQ(rc, 0) << out;
  PartitionTable t;
  Status s = read(img, &t);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(t.scheme, PartitionScheme::Gpt);
  expect_same(t, sfdisk_dump(img), true);
  EXPECT_TRUE(t.warnings.empty()) << ::testing::PrintToString(t.warnings);
}

class GptDamageTest : public PartitionTest {
 protected:
  void SetUp() override {
    img_ = disk("gpt.img");
    int rc = 0;
    std::string out = run("sgdisk -n 1:2048:+8M -c 1:one -n 2:0:+8M -c 2:two " + quote(img_) + " 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
    want_ = sfdisk_dump(img_);
    ASSERT_EQ(want_.size(), 2u);
  }
  std::string img_;
  std::vector<SfdiskEntry> want_;
};

TEST_F(GptDamageTest, BadPrimaryHeaderCrcUsesBackup) {
  patch(img_, 512 + 16, "\x12\x34\x56\x78");
  PartitionTable t;
  Status s = read(img_, &t);
  ASSERT_TRUE(s) << s.message();
  expect_same(t, want_, true);
  EXPECT_TRUE(has_warning(t, "primary header invalid (header CRC mismatch); using the backup header"))
      << ::testing::PrintToString(t.warnings);
}

TEST_F(GptDamageTest, BadPrimaryEntryArrayUsesBackup) {
  patch(img_, 1024 + 56, "XXXX");  // partition 1's name in the primary array
  PartitionTable t;
  ASSERT_TRUE(read(img_, &t));
  expect_same(t, want_, true);
  EXPECT_TRUE(has_warning(t, "entry array CRC mismatch")) << ::testing::PrintToString(t.warnings);
}

TEST_F(GptDamageTest, BothHeadersBadIsAnError) {
  uint64_t size = std::filesystem::file_size(img_);
  patch(img_, 512 + 16, "\x12\x34\x56\x78");
  patch(img_, size - 512, "NOT PART");
  PartitionTable t;
  Status s = read(img_, &t);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("gpt: primary header invalid (header CRC mismatch) and backup header invalid"),
            std::string::npos)
      << s.message();
}

TEST_F(PartitionTest, BareFileSystemsOnTheWholeDisk) {
  std::string img = disk("bare.img", "16M");
  int rc = 0;
  run("mkfs.ext4 -q -F " + quote(img), &rc);
  ASSERT_EQ(rc, 0);
  PartitionTable t;
  ASSERT_TRUE(read(img, &t));
  EXPECT_EQ(t.scheme, PartitionScheme::Whole);
  ASSERT_EQ(t.partitions.size(), 1u);
  EXPECT_EQ(t.partitions[0].filesystem, "ext4");
  EXPECT_EQ(t.partitions[0].size, 16u << 20);

  std::string fat = disk("fat.img", "16M");
  std::string out = run("mkfs.vfat " + quote(fat) + " 2>&1", &rc);
  if (rc != 0) GTEST_SKIP() << "mkfs.vfat unavailable: " << out;
  PartitionTable f;
  ASSERT_TRUE(read(fat, &f));
  EXPECT_EQ(f.scheme, PartitionScheme::Whole);  // a FAT boot sector also ends in 0x55AA
  EXPECT_EQ(f.partitions.at(0).filesystem, "vfat");
}

// FAT volumes in the partitions that usually hold them: MBR types 0x0B,
// 0x0C, 0x0E, 0xEF and GPT's EFI System Partition; the table as sfdisk reads
// it, the contents as mkfs.vfat made them.
TEST_F(PartitionTest, FatPartitionsInMbrAndGpt) {
  std::string mbr = disk("fat_mbr.img", "80M");
  sfdisk(mbr,
         "start=2048, size=32768, type=b\nstart=34816, size=32768, type=c\n"
         "start=67584, size=32768, type=e\nstart=100352, size=32768, type=ef\n");
  for (uint64_t start : {2048, 34816, 67584, 100352}) {
    int rc = 0;
    std::string out = run("mkfs.vfat " + std::string(start == 2048 ? "-F 32 -s 1 " : "") + "--offset=" +
                              std::to_string(start) + " " + quote(mbr) + " 16384 2>&1",
                          &rc);
    ASSERT_EQ(rc, 0) << out;
  }
  PartitionTable t;
  ASSERT_TRUE(read(mbr, &t));
  EXPECT_EQ(t.scheme, PartitionScheme::Mbr);
  expect_same(t, sfdisk_dump(mbr), false);
  for (const Partition& p : t.partitions) EXPECT_EQ(p.filesystem, "vfat") << p.number;

  std::string gpt = disk("fat_gpt.img");
  int rc = 0;
  std::string out = run("sgdisk -n 1:2048:+33M -t 1:ef00 -c 1:esp -n 2:0:+8M -t 2:8300 " + quote(gpt) +
                            " >/dev/null 2>&1 && mkfs.vfat -F 32 -s 1 --offset=2048 " + quote(gpt) + " 33792 2>&1 && " +
                            "mkfs.ext4 -q -F -E offset=" + std::to_string((2048 + 67584) * 512) + " " + quote(gpt) +
                            " 8M 2>&1",
                        &rc);
  ASSERT_EQ(rc, 0) << out;
  PartitionTable g;
  ASSERT_TRUE(read(gpt, &g));
  EXPECT_EQ(g.scheme, PartitionScheme::Gpt);
  expect_same(g, sfdisk_dump(gpt), true);
  ASSERT_EQ(g.partitions.size(), 2u);
  EXPECT_EQ(g.partitions[0].type_guid, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
  EXPECT_EQ(g.partitions[0].filesystem, "vfat");
  EXPECT_EQ(g.partitions[1].filesystem, "ext4");
}

TEST_F(PartitionTest, EmptyAndTinyDisks) {
  std::string img = disk("zero.img", "1M");
  PartitionTable t;
  ASSERT_TRUE(read(img, &t));
  EXPECT_EQ(t.scheme, PartitionScheme::Whole);
  EXPECT_TRUE(has_warning(t, "no partition table and no known file system"));
  std::vector<std::byte> tiny(100);
  MemoryReader m(tiny);
  Status s = read_partition_table(m, &t);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("smaller than one sector"), std::string::npos);
}

}  // namespace
}  // namespace dsvmi::testing

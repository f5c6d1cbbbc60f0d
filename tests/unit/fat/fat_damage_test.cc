// The FAT crawler on damaged and hostile volumes: a clean mkfs.vfat + mtools
// volume, then one targeted corruption per test at places located through
// minfo and The Sleuth Kit (not through the crawler). Each test asserts the
// error or problem text and that the crawl ends with bounded output.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "../common/temp_dir.h"
#include "../../../engine/fs/fat/directory.h"
#include "dsvmi/fat.h"
#include "dsvmi/memory_reader.h"
#include "fat_oracles.h"

namespace dsvmi::testing {
namespace {

class FatDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    vol_.image = dir_ / "fat.img";
    const std::string img = quote(vol_.image);
    std::string cmd = "mkfs.vfat -F 32 -s 1 -n DAMAGE -C " + img + " 65536 >/dev/null && mkdir -p " +
                      quote(dir_ / "t/dir/sub") + " && head -c 2000 /dev/urandom > " + quote(dir_ / "t/a.txt") +
                      " && head -c 1000 /dev/urandom > " + quote(dir_ / "t/b.txt") + " && echo c > " +
                      quote(dir_ / "t/dir/c.txt") + " && echo long > " + quote(dir_ / "t/Long File Name.txt") +
                      " && " + vol_.m("copy") + " -s -Q " + quote(dir_ / "t") + "/* ::/";
    int rc = 0;
    run(cmd + " 2>&1", &rc);
    ASSERT_EQ(rc, 0) << cmd;
    std::ifstream in(vol_.image, std::ios::binary);
    image_.assign(std::istreambuf_iterator<char>(in), {});
    const std::string minfo = run(vol_.m("info") + " ::");
    reserved_ = std::stoul(minfo_field(minfo, "reserved (boot) sectors:"));
    fat_sectors_ = std::stoul(minfo_field(minfo, "Big fatlen"));
    data_start_ = reserved_ + 2 * fat_sectors_;
    tsk_ = tsk_paths(vol_);
  }

  // First cluster of `path`, from istat's first sector (512-byte clusters).
  uint32_t first_cluster(const std::string& path) {
    TskStat st = tsk_istat(vol_, tsk_.at(path).addr);
    EXPECT_FALSE(st.sectors.empty()) << path;
    return st.sectors.empty() ? 0 : uint32_t(st.sectors[0] - data_start_ + 2);
  }
  size_t fat_entry(uint32_t cluster, int copy = 0) const {
    return (reserved_ + size_t(copy) * fat_sectors_) * 512 + size_t(cluster) * 4;
  }
  void put32(size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) image_[at + i] = char(v >> (8 * i));
  }
  uint32_t get32(size_t at) const {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(image_[at + i])) << (8 * i);
    return v;
  }
  // Byte offset of the short entry named `name11` ("A       TXT") in the
  // directory whose first cluster is `dir_cluster` (one cluster is enough here).
  size_t short_entry(uint32_t dir_cluster, const char* name11) {
    const size_t base = (data_start_ + dir_cluster - 2) * 512;
    for (size_t off = 0; off < 512; off += 32)
      if (std::memcmp(&image_[base + off], name11, 11) == 0) return base + off;
    ADD_FAILURE() << "no entry " << name11;
    return base;
  }
  void set_first_cluster(size_t entry, uint32_t c) {
    image_[entry + 20] = char(c >> 16);
    image_[entry + 21] = char(c >> 24);
    image_[entry + 26] = char(c);
    image_[entry + 27] = char(c >> 8);
  }

  Status crawl(RecordingSink* sink, FatCrawlStats* stats = nullptr, size_t size = 0) {
    MemoryReader disk(std::span<const std::byte>(reinterpret_cast<const std::byte*>(image_.data()),
                                                 size ? size : image_.size()));
    FatCrawlOptions options;
    options.max_problems = 200;
    return crawl_fat(disk, 0, disk.size(), *sink, options, stats);
  }
  const DirEntry* entry(const RecordingSink& sink, const std::string& name) {
    for (const auto& e : sink.entries)
      if (e.second.name == name) return &e.second;
    return nullptr;
  }

  TempDir dir_{"dsvmi-fat-damage"};
  Volume vol_;
  std::string image_;
  uint64_t reserved_ = 0, fat_sectors_ = 0, data_start_ = 0;
  std::map<std::string, TskEntry> tsk_;
};

TEST_F(FatDamage, CleanVolumeHasNoProblems) {
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_EQ(sink.problems_text(), "");
  EXPECT_NE(entry(sink, "Long File Name.txt"), nullptr);
}

TEST_F(FatDamage, BadBootSectorsAreRefused) {
  const std::string clean = image_;
  struct Case {
    size_t at;
    uint8_t value;
    const char* error;
  } cases[] = {
      {510, 0x00, "0x55AA"},             {11, 0x00, "bytes per sector"},  // 0x0200 -> 0x0200 & 0xFF00
      {13, 3, "sectors per cluster"},    {14, 0, "reserved"},
      {16, 0, "FAT copies"},             {21, 0x12, "media"},
      {42, 1, "version"},                {44, 0, "root directory cluster"},
  };
  for (const Case& c : cases) {
    image_ = clean;
    image_[c.at] = char(c.value);
    if (c.at == 14) image_[15] = 0;
    if (c.at == 11) image_[12] = 0;  // bytes per sector 0
    RecordingSink sink;
    Status s = crawl(&sink);
    ASSERT_FALSE(s) << c.error;
    EXPECT_NE(s.message().find(c.error), std::string::npos) << s.message();
    EXPECT_EQ(sink.begins, 0) << "nothing is reported before the geometry holds";
  }
}

TEST_F(FatDamage, LoopingChainIsCut) {
  const uint32_t a = first_cluster("/a.txt");  // 2000 bytes: 4 clusters a .. a+3
  put32(fat_entry(a + 3), a);
  put32(fat_entry(a + 3, 1), a);
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_NE(sink.problems_text().find("loops back to cluster " + std::to_string(a)), std::string::npos)
      << sink.problems_text();
  const Inode& in = sink.inodes.at(a);
  uint64_t sectors = 0;
  for (const Extent& x : in.extents) sectors += x.length;
  EXPECT_EQ(sectors, 4u);
}

TEST_F(FatDamage, CrossLinkedFileGetsNoData) {
  const uint32_t a = first_cluster("/a.txt");
  set_first_cluster(short_entry(2, "B       TXT"), a);
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_NE(sink.problems_text().find("cross-linked"), std::string::npos) << sink.problems_text();
  const DirEntry* b = entry(sink, "b.txt");
  ASSERT_NE(b, nullptr);
  EXPECT_GE(b->ino, 0x10000000u) << "an entry without clusters of its own gets a location id";
  EXPECT_TRUE(sink.inodes.at(b->ino).extents.empty());
  EXPECT_EQ(entry(sink, "a.txt")->ino, a);
}

TEST_F(FatDamage, DirectoryLinkedToItsAncestorIsSkipped) {
  const uint32_t dir = first_cluster("/dir");
  set_first_cluster(short_entry(dir, "SUB        "), 2);  // /dir/sub -> the root
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_NE(sink.problems_text().find("directory 'sub'"), std::string::npos) << sink.problems_text();
  EXPECT_EQ(entry(sink, "sub"), nullptr);
  EXPECT_EQ(sink.duplicate_inodes, 0);
}

TEST_F(FatDamage, DifferingFatCopiesAreReported) {
  const uint32_t b = first_cluster("/b.txt");
  put32(fat_entry(b, 1), 0);
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_NE(sink.problems_text().find("FAT copy 2 differs from copy 1 in 1 entries (first: cluster " +
                                      std::to_string(b) + ")"),
            std::string::npos)
      << sink.problems_text();
  EXPECT_EQ(sink.inodes.at(b).extents.size(), 1u) << "copy 1 is the one used";
}

TEST_F(FatDamage, LongNameWithBadChecksumFallsBackToTheShortName) {
  // The long name's slots precede its short entry; mdir shows the short name.
  const std::string listing = run(vol_.m("dir") + " -a ::/");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(listing, m, std::regex(R"((LONGFI~\d) +TXT)"))) << listing;
  const std::string short11 = m[1].str() + std::string(8 - m[1].length(), ' ') + "TXT";
  const size_t e = short_entry(2, short11.c_str());
  ASSERT_EQ(uint8_t(image_[e - 32 + 11]), 0x0F) << "a long-name slot before it";
  image_[e - 32 + 13] ^= 0x5A;  // its checksum byte
  RecordingSink sink;
  FatCrawlStats stats;
  ASSERT_TRUE(crawl(&sink, &stats));
  EXPECT_NE(sink.problems_text().find("long-name slot"), std::string::npos) << sink.problems_text();
  EXPECT_EQ(entry(sink, "Long File Name.txt"), nullptr);
  EXPECT_NE(entry(sink, m[1].str() + ".TXT"), nullptr);
  EXPECT_GE(stats.orphan_lfn_slots, 1u);
}

TEST_F(FatDamage, SlashInALongNameIsReplaced) {
  const std::string listing = run(vol_.m("dir") + " -a ::/");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(listing, m, std::regex(R"((LONGFI~\d) +TXT)")));
  const std::string short11 = m[1].str() + std::string(8 - m[1].length(), ' ') + "TXT";
  const size_t e = short_entry(2, short11.c_str());
  // The last slot before the short entry holds characters 1..13: 'L' -> '/'.
  ASSERT_EQ(image_[e - 32 + 1], 'L');
  image_[e - 32 + 1] = '/';
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_NE(sink.problems_text().find("holds '/'"), std::string::npos);
  EXPECT_NE(entry(sink, "\xEF\xBF\xBDong File Name.txt"), nullptr);
}

TEST_F(FatDamage, HugeGarbageDirectoryIsBounded) {
  // /dir's chain grows to 20 000 clusters of random bytes: far past the
  // 65 536 entries (2 MiB) a directory may have.
  const uint32_t dir = first_cluster("/dir");
  const uint32_t start = 40000;
  put32(fat_entry(dir), start);
  put32(fat_entry(dir, 1), start);
  std::mt19937 rng(7);
  for (uint32_t c = start; c < start + 20000; ++c) {
    const uint32_t next = c + 1 < start + 20000 ? c + 1 : 0x0FFFFFFF;
    put32(fat_entry(c), next);
    put32(fat_entry(c, 1), next);
    for (size_t i = 0; i < 512; ++i) image_[(data_start_ + c - 2) * 512 + i] = char(rng());
  }
  RecordingSink sink;
  FatCrawlStats stats;
  ASSERT_TRUE(crawl(&sink, &stats));
  EXPECT_NE(sink.problems_text().find("more than 65536 entries"), std::string::npos);
  EXPECT_LE(sink.entries.size(), 65536u + 16);
  EXPECT_LE(sink.problems.size(), 201u) << "problems are capped";
  EXPECT_LE(stats.bytes_read, image_.size() + (8u << 20)) << "each cluster is read at most once";
}

TEST_F(FatDamage, ShortChainIsReported) {
  const uint32_t a = first_cluster("/a.txt");
  put32(fat_entry(a + 1), 0x0FFFFFFF);
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink));
  EXPECT_NE(sink.problems_text().find("file 'a.txt' of 2000 bytes has a chain of only 2 clusters"),
            std::string::npos)
      << sink.problems_text();
}

TEST_F(FatDamage, TruncatedVolumeCrawlsWhatIsThere) {
  RecordingSink sink;
  ASSERT_TRUE(crawl(&sink, nullptr, image_.size() / 2));
  EXPECT_NE(sink.problems_text().find("(truncated?)"), std::string::npos) << sink.problems_text();
  EXPECT_NE(entry(sink, "a.txt"), nullptr);
}

}  // namespace
}  // namespace dsvmi::testing

// A long-name slot with ordinal 0 right after the last slot of a name (the
// count has reached 0; found by fuzz_fat_dir) is out of sequence: it must be
// an orphan, never stored as slot "0" in front of the name's buffer.
TEST(FatDirectory, OrdinalZeroAfterTheLastSlotIsAnOrphan) {
  unsigned char d[3 * 32] = {};
  for (int k = 0; k < 2; ++k) {
    unsigned char* e = d + 32 * k;
    e[0] = k == 0 ? 0x41 : 0x00;  // first: last slot of a 1-slot name; then ordinal 0
    e[11] = 0x0F;                 // long-name attribute
    e[13] = 0x5A;                 // the same checksum
    for (int i = 0; i < 5; ++i) e[1 + 2 * i] = 'a';
  }
  std::memcpy(d + 64, "SHORT   TXT", 11);
  size_t entries = 0;
  dsvmi::fat::DirectoryCallbacks cb;
  cb.entry = [&](const dsvmi::fat::ParsedEntry& e) {
    ++entries;
    EXPECT_EQ(e.short_name, "SHORT.TXT");
  };
  dsvmi::fat::DirectoryCounts counts;
  dsvmi::fat::parse_directory(d, sizeof d, true, cb, &counts);
  EXPECT_EQ(entries, 1u);
  EXPECT_GE(counts.orphan_slots, 1u);
}

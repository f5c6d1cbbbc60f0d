// The NTFS crawler on hostile volumes: a small mkntfs volume with files
// copied in by ntfscp (records found with The Sleuth Kit's fls), then
// damaged the ways a guest could: a torn File Record, runlists that loop or
// point outside the volume, a record claiming an absurd size, an $MFT whose
// own runlist loops, attribute lists naming records that are not theirs,
// and thousands of random byte flips over the MFT. Every crawl must end,
// report the damage as problems and never trust a torn record.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <random>

#include "../../../engine/fs/ntfs/attributes.h"
#include "../../../engine/fs/ntfs/le.h"
#include "../../../engine/fs/ntfs/record.h"
#include "../common/temp_dir.h"
#include "dsvmi/memory_reader.h"
#include "dsvmi/ntfs.h"
#include "ntfs_oracles.h"

namespace dsvmi::testing {
namespace {

using ntfs::le16;
using ntfs::le32;
using ntfs::le64;

struct Image {
  std::vector<unsigned char> bytes;
  uint32_t cluster = 0, record = 0;
  uint64_t mft = 0;  // byte offset of record 0 (the first MFT run holds records 0..63)
  unsigned char* rec(uint64_t r) { return bytes.data() + mft + r * record; }
};

// A 16 MiB volume with two 20000-byte files, one.bin (record 64) and
// two.bin (record 65), as fls lists them.
Image make_image(const TempDir& dir) {
  const std::string img = dir / "d.img", data = dir / "f";
  int rc = 0;
  run("truncate -s 16M " + quote(img) + " && mkntfs -F -Q -c 4096 " + quote(img) + " >/dev/null 2>&1 && head -c 20000 "
      "/dev/urandom >" + quote(data) + " && ntfscp " + quote(img) + " " + quote(data) + " one.bin >/dev/null && ntfscp " +
          quote(img) + " " + quote(data) + " two.bin >/dev/null",
      &rc);
  EXPECT_EQ(rc, 0);
  const std::string fls = run("fls " + quote(img));
  EXPECT_NE(fls.find("r/r 64-128-2:\tone.bin"), std::string::npos) << fls;
  EXPECT_NE(fls.find("r/r 65-128-2:\ttwo.bin"), std::string::npos) << fls;
  Image im;
  std::ifstream in(img, std::ios::binary);
  im.bytes.assign(std::istreambuf_iterator<char>(in), {});
  im.cluster = le16(&im.bytes[11]) * im.bytes[13];
  im.record = 1024;
  im.mft = le64(&im.bytes[0x30]) * im.cluster;
  return im;
}

// Edits File Record `r` between removing and re-applying its fixups.
void edit_record(Image& im, uint64_t r, const std::function<void(unsigned char*)>& edit) {
  unsigned char* p = im.rec(r);
  ASSERT_EQ(ntfs::apply_fixups(p, im.record, "FILE"), ntfs::FixupResult::Ok);
  edit(p);
  unsigned char* usa = p + le16(p + 4);
  for (uint32_t i = 0; i < im.record / 512; ++i) {
    unsigned char* end = p + (i + 1) * 512 - 2;
    usa[2 + 2 * i] = end[0];
    usa[3 + 2 * i] = end[1];
    end[0] = usa[0];
    end[1] = usa[1];
  }
}

// The first attribute of `type` in a fixed-up record.
unsigned char* find_attr(unsigned char* p, uint32_t type) {
  for (uint32_t at = le16(p + 20); at + 8 < 1024 && le32(p + at) != 0xFFFFFFFF; at += le32(p + at + 4)) {
    if (le32(p + at + 4) == 0) return nullptr;
    if (le32(p + at) == type) return p + at;
  }
  return nullptr;
}

struct Crawl {
  Status status;
  RecordingSink sink;
  NtfsCrawlStats stats;
  bool problem_says(const std::string& what) const { return sink.problems_text().find(what) != std::string::npos; }
  bool named(const std::string& name) const {
    for (const auto& [parent, e] : sink.entries)
      if (e.name == name) return true;
    return false;
  }
};

Crawl crawl(const Image& im) {
  MemoryReader disk(std::span<const std::byte>(reinterpret_cast<const std::byte*>(im.bytes.data()), im.bytes.size()));
  Crawl c;
  c.status = crawl_ntfs(disk, 0, im.bytes.size(), c.sink, {}, &c.stats);
  return c;
}

class NtfsDamage : public ::testing::Test {
 protected:
  void SetUp() override { im = make_image(dir); }
  TempDir dir{"dsvmi-ntfs-damage"};
  Image im;
};

TEST_F(NtfsDamage, IntactVolumeHasNoProblems) {
  Crawl c = crawl(im);
  ASSERT_TRUE(c.status) << c.status.message();
  EXPECT_EQ(c.sink.problems_text(), "");
  EXPECT_TRUE(c.named("one.bin"));
  EXPECT_TRUE(c.named("two.bin"));
  EXPECT_EQ(c.sink.inodes.at(64).size, 20000u);
}

TEST_F(NtfsDamage, TornRecordIsRejectedAndCounted) {
  im.rec(64)[1022] ^= 0xFF;  // the second sector's end no longer carries the update sequence number
  Crawl c = crawl(im);
  ASSERT_TRUE(c.status) << c.status.message();
  EXPECT_EQ(c.stats.torn_records, 1u);
  EXPECT_TRUE(c.problem_says("record 64 rejected: torn write")) << c.sink.problems_text();
  EXPECT_FALSE(c.sink.inodes.count(64));
  EXPECT_FALSE(c.named("one.bin"));
  // The directory index still names it: the cross-check says so.
  EXPECT_TRUE(c.problem_says("index entry 'one.bin' (record 64")) << c.sink.problems_text();
  EXPECT_TRUE(c.named("two.bin"));
}

TEST_F(NtfsDamage, LoopingRunlistIsCut) {
  edit_record(im, 64, [&](unsigned char* p) {
    unsigned char* a = find_attr(p, ntfs::kAttrData);
    ASSERT_TRUE(a && a[8]);
    unsigned char* rl = a + le16(a + 32);
    const unsigned char loop[] = {0x11, 0x02, 0x40, 0x11, 0x02, 0x00, 0x11, 0x03, 0x00, 0x00};  // 2 at 64, 2 at 64, 3 at 64
    std::memcpy(rl, loop, sizeof loop);
  });
  Crawl c = crawl(im);
  ASSERT_TRUE(c.status) << c.status.message();
  EXPECT_TRUE(c.problem_says("maps clusters an earlier run maps too")) << c.sink.problems_text();
  ASSERT_TRUE(c.sink.inodes.count(64));
  const Inode& in = c.sink.inodes.at(64);
  ASSERT_EQ(in.extents.size(), 1u);
  EXPECT_EQ(in.extents[0].physical, 64u);
  EXPECT_EQ(in.extents[0].length, 2u);
}

TEST_F(NtfsDamage, RunlistOutsideTheVolumeIsRejected) {
  edit_record(im, 65, [&](unsigned char* p) {
    unsigned char* a = find_attr(p, ntfs::kAttrData);
    ASSERT_TRUE(a && a[8]);
    unsigned char* rl = a + le16(a + 32);
    const unsigned char far[] = {0x41, 0x05, 0x00, 0x00, 0x00, 0x10, 0x00};  // 5 clusters at LCN 2^28
    std::memcpy(rl, far, sizeof far);
  });
  Crawl c = crawl(im);
  ASSERT_TRUE(c.status) << c.status.message();
  EXPECT_TRUE(c.problem_says("lies outside the volume")) << c.sink.problems_text();
  ASSERT_TRUE(c.sink.inodes.count(65));
  EXPECT_TRUE(c.sink.inodes.at(65).extents.empty());
}

TEST_F(NtfsDamage, HugeClaimedSizeIsCut) {
  edit_record(im, 64, [&](unsigned char* p) {
    unsigned char* a = find_attr(p, ntfs::kAttrData);
    ASSERT_TRUE(a && a[8]);
    for (int i = 0; i < 8; ++i) a[48 + i] = a[40 + i] = 0x7F;  // allocated and data size ~2^63
  });
  Crawl c = crawl(im);
  ASSERT_TRUE(c.status) << c.status.message();
  EXPECT_TRUE(c.problem_says("claims")) << c.sink.problems_text();
  ASSERT_TRUE(c.sink.inodes.count(64));
  EXPECT_LE(c.sink.inodes.at(64).size, uint64_t(5) * 4096);
}

TEST_F(NtfsDamage, LoopingMftRunlistIsBounded) {
  edit_record(im, 0, [&](unsigned char* p) {
    unsigned char* a = find_attr(p, ntfs::kAttrData);
    ASSERT_TRUE(a && a[8]);
    unsigned char* rl = a + le16(a + 32);
    const uint64_t lcn = im.mft / im.cluster;
    // 32 clusters from the MFT's start, then the same 32 clusters again, claiming 2^40 bytes.
    const unsigned char loop[] = {0x21, 0x20, uint8_t(lcn), uint8_t(lcn >> 8), 0x11, 0x20, 0x00, 0x00};
    std::memcpy(rl, loop, sizeof loop);
    for (int i = 0; i < 8; ++i) a[40 + i] = a[48 + i] = a[56 + i] = i == 5 ? 1 : 0;
  });
  Crawl c = crawl(im);
  ASSERT_TRUE(c.status) << c.status.message();
  EXPECT_TRUE(c.problem_says("$MFT")) << c.sink.problems_text();
  EXPECT_LE(c.stats.mft_records, 128u);
  EXPECT_TRUE(c.named("one.bin"));
}

TEST_F(NtfsDamage, AttributeListNamingAnotherFilesRecordIsIgnored) {
  // one.bin gets a resident $ATTRIBUTE_LIST that names two.bin's record (65)
  // and itself many times: 65 is not its extension, so nothing of it is merged.
  edit_record(im, 64, [&](unsigned char* p) {
    uint32_t end = le16(p + 20);
    while (le32(p + end) != 0xFFFFFFFF) end += le32(p + end + 4);
    unsigned char* a = p + end;
    const uint32_t entries = 8, value = entries * 32, length = 24 + value;
    ASSERT_LT(end + length + 8, 1024u - 8);
    std::memset(a, 0, length);
    a[0] = 0x20;
    a[4] = uint8_t(length), a[5] = uint8_t(length >> 8);
    a[16] = uint8_t(value), a[17] = uint8_t(value >> 8);
    a[20] = 24;
    for (uint32_t i = 0; i < entries; ++i) {
      unsigned char* e = a + 24 + 32 * i;
      e[0] = 0x30;  // $FILE_NAME
      e[4] = 32;
      e[7] = 26;
      e[16] = i % 2 ? 65 : 64;
      e[22] = 1;  // sequence 1
    }
    unsigned char* term = a + length;
    std::memset(term, 0xFF, 4);
    const uint32_t used = end + length + 8;
    p[24] = uint8_t(used), p[25] = uint8_t(used >> 8);
  });
  Crawl c = crawl(im);
  ASSERT_TRUE(c.status) << c.status.message();
  EXPECT_EQ(c.stats.attribute_lists, 1u);
  EXPECT_TRUE(c.problem_says("belongs to record 0")) << c.sink.problems_text();
  EXPECT_TRUE(c.named("one.bin"));
  EXPECT_TRUE(c.named("two.bin"));
  for (const auto& [parent, e] : c.sink.entries) EXPECT_TRUE(e.name != "two.bin" || e.ino == 65);
}

TEST_F(NtfsDamage, RandomByteFlipsNeverCrash) {
  const Image clean = im;
  std::mt19937_64 rng(1234);
  const uint64_t span = 64 * 1024;  // records 0..63
  uint64_t problems = 0;
  for (int round = 0; round < 300; ++round) {
    Image damaged = clean;
    const int flips = 1 + int(rng() % 40);
    for (int i = 0; i < flips; ++i) {
      const uint64_t at = rng() % 8 == 0 ? rng() % 512 : damaged.mft + rng() % span;
      damaged.bytes[at] ^= uint8_t(1 + rng() % 255);
    }
    Crawl c = crawl(damaged);
    problems += c.stats.problems;
    if (c.status) {
      EXPECT_EQ(c.sink.begins, 1);
      EXPECT_EQ(c.sink.ends, 1);
    }
    EXPECT_LE(c.sink.problems.size(), 10000u);
  }
  EXPECT_GT(problems, 0u);
}

}  // namespace
}  // namespace dsvmi::testing

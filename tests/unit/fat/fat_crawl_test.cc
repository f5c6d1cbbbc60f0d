// The FAT crawler against outside oracles: volumes made by mkfs.vfat (FAT32
// at three cluster sizes, FAT16, FAT12; bare, in an MBR partition, as the
// ESP of a GPT disk beside an ext4 root), populated and changed by mtools,
// checked clean by fsck.fat -n, then compared with The Sleuth Kit (fls -r -p,
// istat: every path, type, size, attribute, write time and sector list),
// mtools (mdir -/ -b -a: every path; mtype: every file's bytes read through
// the crawl's extents; minfo: the geometry) and crawl_disk's index.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "../common/temp_dir.h"
#include "dsvmi/crawl.h"
#include "dsvmi/fat.h"
#include "dsvmi/index.h"
#include "fat_oracles.h"

namespace dsvmi::testing {
namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& p, size_t bytes, uint32_t seed) {
  fs::create_directories(p.parent_path());
  std::mt19937 rng(seed);
  std::string data(bytes, '\0');
  for (auto& c : data) c = char(rng());
  std::ofstream(p, std::ios::binary) << data;
}

// The host tree mcopy -s copies in: long and Unicode names (a surrogate
// pair among them), 8.3 names in every case, a deep chain, 600 files in one
// directory, empty files and an empty directory, multi-cluster files.
void make_tree(const fs::path& t) {
  write_file(t / "EFI/BOOT/BOOTX64.EFI", 40000, 1);
  write_file(t / "EFI/debian/grubx64.efi", 150000, 2);
  fs::path deep = t / "deep";
  for (int i = 1; i <= 12; ++i) deep /= "level" + std::to_string(i);
  write_file(deep / "leaf.txt", 100, 3);
  for (int i = 0; i < 600; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "entry_%04d.txt", i);
    write_file(t / "many" / name, size_t(i % 5), 100 + i);
  }
  write_file(t / "names/\xC3\x9Cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9 \xE2\x98\x83 snow.txt", 10, 4);
  write_file(t / "names/emoji \xF0\x9F\x98\x80.bin", 20, 5);
  write_file(t / "names/a name with spaces.txt", 30, 6);
  write_file(t / "names/MixedCase.Txt", 40, 7);
  write_file(t / "names/lower.txt", 50, 8);
  write_file(t / "names/UPPER.TXT", 60, 9);
  write_file(t / "names/x.y.z.multi.dots", 70, 10);
  write_file(t / "names" / std::string(200, 'L'), 80, 11);
  write_file(t / "big/three_mib.bin", 3 << 20, 12);
  write_file(t / "big/exact_4k", 4096, 13);
  write_file(t / "big/exact_32k", 32768, 14);
  write_file(t / "big/hole_maker.bin", 200000, 16);
  write_file(t / "empty_file", 0, 15);
  fs::create_directories(t / "empty_dir");
}

std::string utc(int64_t ns) {
  time_t s = time_t(ns / 1000000000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// The members of `a` that `b` lacks, one a line.
std::string only_in(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::string out;
  for (const auto& x : a)
    if (!b.count(x)) out += x + "\n";
  return out;
}

struct Variant {
  std::string name;
  std::string mkfs;      // mkfs.vfat options
  uint64_t size_kib;     // of the volume
  std::string table;     // "", "mbr", "gpt"
};

std::ostream& operator<<(std::ostream& o, const Variant& v) { return o << v.name; }

class FatCrawl : public ::testing::TestWithParam<Variant> {};

// Builds the image; returns the volume (and for gpt, the ext4 root's offset).
Volume make_image(const TempDir& dir, const Variant& v, uint64_t* ext4_offset) {
  Volume vol;
  vol.image = dir / "disk.img";
  const uint64_t part_sector = 2048;
  std::string cmd;
  if (v.table.empty()) {
    cmd = "mkfs.vfat " + v.mkfs + " -n DSVMI -C " + quote(vol.image) + " " + std::to_string(v.size_kib);
  } else {
    vol.offset = part_sector * 512;
    const uint64_t sectors = v.size_kib * 2;
    const uint64_t disk_bytes = vol.offset + v.size_kib * 1024 + (v.table == "gpt" ? 40u << 20 : 1u << 20);
    cmd = "truncate -s " + std::to_string(disk_bytes) + " " + quote(vol.image) + " && ";
    if (v.table == "mbr") {
      cmd += "printf 'start=2048, size=" + std::to_string(sectors) + ", type=c\\n' | sfdisk -q " + quote(vol.image);
    } else {
      cmd += "sgdisk -o -n 1:2048:" + std::to_string(2048 + sectors - 1) + " -t 1:ef00 -n 2:0:0 -t 2:8300 " +
             quote(vol.image) + " >/dev/null";
    }
    cmd += " && mkfs.vfat " + v.mkfs + " -n DSVMI --offset=2048 " + quote(vol.image) + " " +
           std::to_string(v.size_kib);
  }
  int rc = 0;
  run(cmd + " >/dev/null 2>&1", &rc);
  EXPECT_EQ(rc, 0) << cmd;
  if (v.table == "gpt") {
    std::string info = run("sgdisk -i 2 " + quote(vol.image));
    std::smatch m;
    EXPECT_TRUE(std::regex_search(info, m, std::regex(R"(First sector: (\d+))"))) << info;
    *ext4_offset = std::stoull(m[1]) * 512;
    std::string last = std::regex_search(info, m, std::regex(R"(Last sector: (\d+))")) ? m[1].str() : "0";
    const uint64_t blocks = (std::stoull(last) + 1 - *ext4_offset / 512) / 8;
    run("mkfs.ext4 -q -F -E offset=" + std::to_string(*ext4_offset) + " " + quote(vol.image) + " " +
            std::to_string(blocks) + " >/dev/null 2>&1",
        &rc);
    EXPECT_EQ(rc, 0);
  }
  // Populate, then change it the ways mtools can: rename, move, attributes,
  // deletions (0xE5 entries), and a file written into the holes they leave
  // (a fragmented chain, on the small volumes).
  const std::string tree = dir / "tree";
  make_tree(tree);
  std::string pop = vol.m("copy") + " -s -Q " + quote(tree) + "/* ::/ && " +
                    vol.m("ren") + " ::/names/lower.txt renamed_lower.txt && " +
                    vol.m("move") + " ::/deep/level1/level2/level3 ::/moved_level3 && " +
                    vol.m("attrib") + " +r ::/EFI/BOOT/BOOTX64.EFI && " +
                    vol.m("attrib") + " +h +s ::/names/UPPER.TXT && ";
  for (int i = 0; i < 600; i += 20) {
    char name[40];
    std::snprintf(name, sizeof name, "::/many/entry_%04d.txt", i + 3);
    pop += vol.m("del") + " " + name + " && ";
  }
  pop += vol.m("del") + " ::/big/hole_maker.bin";
  run(pop + " 2>&1", &rc);
  EXPECT_EQ(rc, 0) << pop;
  if (v.size_kib <= 70000) {
    // mtools allocates after its last allocation: fill the volume's end up
    // to less than frag.bin needs, so that it wraps around into the holes.
    std::string listing = run(vol.m("dir") + " ::/");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(listing, m, std::regex(R"(([0-9 ]+) bytes free)"))) << listing;
    std::string digits;
    for (char c : m[1].str())
      if (c != ' ') digits += c;
    // The holes: hole_maker's 200 000 bytes and 30 one-cluster files.
    const std::string minfo = run(vol.m("info") + " ::");
    const uint64_t cluster = std::stoull(minfo_field(minfo, "sector size:")) *
                             std::stoull(minfo_field(minfo, "cluster size:"));
    const uint64_t filler = std::stoull(digits) - 250000 - 60 * cluster;
    run("truncate -s " + std::to_string(filler) + " " + quote(dir / "filler") + " && " + vol.m("copy") + " " +
            quote(dir / "filler") + " ::/filler && rm " + quote(dir / "filler"),
        &rc);
    EXPECT_EQ(rc, 0);
    write_file(dir / "frag.bin", 200000, 99);
    run(vol.m("copy") + " " + quote(dir / "frag.bin") + " ::/many/frag.bin", &rc);
    EXPECT_EQ(rc, 0);
  }
  return vol;
}

TEST_P(FatCrawl, MatchesSleuthKitAndMtools) {
  const Variant& v = GetParam();
  TempDir dir("dsvmi-fat");
  uint64_t ext4_offset = 0;
  Volume vol = make_image(dir, v, &ext4_offset);
  if (HasFailure()) return;

  // fsck.fat has no offset option: check a copy of the volume.
  int rc = 0;
  const std::string part = dir / "part.img";
  run("dd if=" + quote(vol.image) + " of=" + quote(part) + " bs=512 skip=" + std::to_string(vol.offset / 512) +
          " count=" + std::to_string(v.size_kib * 2) + " status=none && fsck.fat -n " + quote(part) + " 2>&1",
      &rc);
  ASSERT_EQ(rc, 0) << "fsck.fat -n does not find the volume clean";
  fs::remove(part);

  Status err;
  auto disk = open_disk(vol.image, {}, &err);
  ASSERT_TRUE(disk) << err.message();
  RecordingSink sink;
  FatCrawlStats stats;
  Status s = crawl_fat(*disk, vol.offset, v.size_kib * 1024, sink, {}, &stats);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(sink.problems_text(), "");
  EXPECT_EQ(sink.begins, 1);
  EXPECT_EQ(sink.ends, 1);
  EXPECT_EQ(sink.duplicate_inodes, 0);

  // Geometry and identity against minfo.
  const std::string minfo = run(vol.m("info") + " ::");
  const uint32_t bps = std::stoul(minfo_field(minfo, "sector size:"));
  const uint32_t spc = std::stoul(minfo_field(minfo, "cluster size:"));
  const uint32_t reserved = std::stoul(minfo_field(minfo, "reserved (boot) sectors:"));
  const uint32_t fats = std::stoul(minfo_field(minfo, "fats:"));
  std::string fatlen = minfo_field(minfo, "Big fatlen");
  if (fatlen.empty() || fatlen == "0") fatlen = minfo_field(minfo, "sectors per fat:");
  EXPECT_EQ(sink.info.type, "vfat");
  EXPECT_EQ(sink.info.block_size, bps);
  EXPECT_EQ(sink.info.label, "DSVMI");
  std::string serial = minfo_field(minfo, "serial number:");
  EXPECT_EQ(sink.info.uuid, serial.substr(0, 4) + "-" + serial.substr(4));
  std::map<BlockKind, std::pair<uint64_t, uint64_t>> runs;
  for (const auto& r : sink.runs) runs[r.kind] = {r.first, r.count};
  EXPECT_EQ(runs[BlockKind::Superblock], std::make_pair(uint64_t{0}, uint64_t{reserved}));
  EXPECT_EQ(runs[BlockKind::MapNode], std::make_pair(uint64_t{reserved}, uint64_t{fats} * std::stoul(fatlen)));
  const uint64_t root_slots = std::stoul(minfo_field(minfo, "max available root directory slots:"));
  const uint64_t data_start = reserved + uint64_t{fats} * std::stoul(fatlen) + root_slots * 32 / bps;
  const std::string expect_bits = v.mkfs.find("-F 12") != std::string::npos   ? "12"
                                  : v.mkfs.find("-F 16") != std::string::npos ? "16"
                                                                               : "32";
  EXPECT_EQ(std::to_string(stats.fat_bits), expect_bits);

  // Every path and type: ours == fls -r -p == mdir -/ -b -a.
  auto ours = crawl_paths(sink, sink.info.root_ino);
  auto tsk = tsk_paths(vol);
  std::set<std::string> ours_set, tsk_set, mdir_set;
  // The Sleuth Kit 4.11 cuts names at 195 bytes (mtools and Linux do not):
  // longer ones are compared with mtools only.
  auto tsk_can_name = [](const std::string& path) {
    size_t start = 0;
    for (size_t slash; (slash = path.find('/', start)) != std::string::npos; start = slash + 1)
      if (slash - start >= 195) return false;
    return path.size() - start < 195;
  };
  std::set<std::string> ours_tsk_set;
  for (const auto& [p, ino] : ours) {
    const Inode& in = sink.inodes.at(ino);
    ours_set.insert(p + (in.type == FileType::Directory ? "/" : ""));
    if (tsk_can_name(p)) ours_tsk_set.insert(p + (in.type == FileType::Directory ? "/" : ""));
  }
  for (const auto& [p, e] : tsk)
    if (tsk_can_name(p)) tsk_set.insert(p + (e.type == 'd' ? "/" : ""));
  std::string mdir = run(vol.m("dir") + " -/ -b -a ::/");
  std::istringstream ms(mdir);
  for (std::string l; std::getline(ms, l);)
    if (l.rfind("::/", 0) == 0) {
      mdir_set.insert(l.substr(2));
    }
  EXPECT_EQ(only_in(ours_tsk_set, tsk_set), "") << "paths fls -r -p does not list";
  EXPECT_EQ(only_in(tsk_set, ours_tsk_set), "") << "paths fls -r -p lists and the crawl does not";
  EXPECT_EQ(only_in(ours_set, mdir_set), "") << "paths mdir -/ -b -a does not list";
  EXPECT_EQ(only_in(mdir_set, ours_set), "") << "paths mdir -/ -b -a lists and the crawl does not";
  EXPECT_GT(ours_set.size(), 600u);
  EXPECT_TRUE(ours.count("/names/renamed_lower.txt"));
  EXPECT_TRUE(ours.count("/moved_level3/level4/level5/level6/level7/level8/level9/level10/level11/level12/leaf.txt"));

  // Attributes, sizes, times and sectors against istat; bytes against mtype.
  size_t compared = 0, fragmented = 0;
  int sample = 0;
  for (const auto& [p, ino] : ours) {
    if (p.rfind("/many/entry_", 0) == 0 && (sample++ % 25) != 0) continue;
    if (!tsk.count(p)) continue;  // a name TSK cuts (above); mtools checked it
    const Inode& in = sink.inodes.at(ino);
    const TskEntry& te = tsk.at(p);
    TskStat st = tsk_istat(vol, te.addr);
    SCOPED_TRACE(p);
    const bool dir_entry = in.type == FileType::Directory;
    if (!dir_entry) {
      EXPECT_EQ(in.size, st.size);
    }
    const bool read_only = st.attributes.find("Read Only") != std::string::npos;
    EXPECT_EQ((in.mode & 0222) == 0, read_only && !dir_entry);
    EXPECT_EQ(((in.flags & 0x02) != 0), st.attributes.find("Hidden") != std::string::npos);
    EXPECT_EQ(((in.flags & 0x04) != 0), st.attributes.find("System") != std::string::npos);
    EXPECT_EQ(utc(in.mtime_ns), st.written);
    std::vector<uint64_t> sectors;
    for (const Extent& x : in.extents)
      for (uint64_t i = 0; i < x.length; ++i) sectors.push_back(x.physical + i);
    if (!dir_entry) {
      // A file's sectors up to its size. TSK 4.11 lists one sector more when
      // a size that is a multiple of the sector size ends inside a cluster.
      const size_t used = (in.size + bps - 1) / bps;
      sectors.resize(std::min<size_t>(sectors.size(), used));
      if (st.sectors.size() == used + 1 && in.size % bps == 0) st.sectors.pop_back();
    }
    EXPECT_EQ(sectors, st.sectors);
    if (!dir_entry) {
      // Identity: files with data are numbered by their first cluster.
      if (in.size > 0) {
        ASSERT_FALSE(st.sectors.empty());
        EXPECT_EQ(in.ino, (st.sectors[0] - data_start) / spc + 2) << "first-cluster id";
        EXPECT_LT(in.ino, 0x10000000u);
      } else {
        EXPECT_GE(in.ino, 0x10000000u);
      }
      std::string bytes(in.size, '\0');
      size_t done = 0;
      for (const Extent& x : in.extents) {
        const uint64_t n = std::min<uint64_t>(uint64_t(x.length) * bps, in.size - done);
        if (n == 0) break;
        ASSERT_TRUE(disk->read(vol.offset + x.physical * bps,
                               std::span<std::byte>(reinterpret_cast<std::byte*>(bytes.data() + done), n)));
        done += n;
      }
      EXPECT_TRUE(bytes == run(vol.m("type") + " " + quote("::" + p))) << "mtype differs";
      fragmented += in.extents.size() > 1;
    }
    ++compared;
  }
  EXPECT_GT(compared, 40u);
  if (v.size_kib <= 70000) {
    EXPECT_GT(fragmented, 0u) << "frag.bin should have filled the holes mdel left";
  }
  EXPECT_GE(stats.deleted_entries, 30u);  // 30 mdel'd files, plus what mren/mmove left

  // Through the whole-disk path: the index holds this volume (and the ext4
  // root of a GPT disk) and `ls` of it equals the crawl.
  CrawlSummary summary;
  CrawlOptions copt;
  copt.index_path = dir / "disk.dsvx";
  s = crawl_disk(*disk, copt, &summary);
  ASSERT_TRUE(s) << s.message();
  std::set<std::string> types;
  for (const auto& f : summary.filesystems) {
    types.insert(f.type);
    EXPECT_TRUE(f.status) << f.status.message();
    EXPECT_EQ(f.problems, 0u) << f.type;
  }
  if (v.table == "gpt") {
    EXPECT_EQ(types, (std::set<std::string>{"vfat", "ext4"}));
    EXPECT_EQ(summary.filesystems[1].offset, ext4_offset);
  } else {
    EXPECT_EQ(types, (std::set<std::string>{"vfat"}));
  }
  EXPECT_EQ(summary.filesystems[0].offset, vol.offset);
  EXPECT_EQ(summary.filesystems[0].inodes, sink.inodes.size());

  // The index answers what `dsvmi ls`/`stat` and the gate ask: every path,
  // each sampled file's size and sector owners, the metadata kinds; it is
  // fresh for this disk, and stale once mtools writes to the volume.
  auto index = Index::open(copt.index_path, &err);
  ASSERT_TRUE(index) << err.message();
  const FsIndex& fsi = index->filesystems().at(0);
  for (const auto& [p, ino] : ours) {
    uint64_t found = 0;
    ASSERT_TRUE(fsi.lookup(p, &found)) << p;
    EXPECT_EQ(found, ino) << p;
  }
  BlockOwner owner;
  ASSERT_TRUE(fsi.owner(0, &owner));
  EXPECT_EQ(owner.kind, BlockKind::Superblock);
  ASSERT_TRUE(fsi.owner(reserved, &owner));
  EXPECT_EQ(owner.kind, BlockKind::MapNode);
  uint64_t three_mib = 0;
  ASSERT_TRUE(fsi.lookup("/big/three_mib.bin", &three_mib));
  const std::vector<uint64_t> big_sectors = tsk_istat(vol, tsk.at("/big/three_mib.bin").addr).sectors;
  ASSERT_FALSE(big_sectors.empty());
  ASSERT_TRUE(fsi.owner(big_sectors.back(), &owner));
  EXPECT_EQ(owner.kind, BlockKind::FileData);
  EXPECT_EQ(owner.ino, three_mib);
  EXPECT_EQ(owner.logical, big_sectors.size() - 1);
  ASSERT_TRUE(fsi.owner(tsk_istat(vol, tsk.at("/many").addr).sectors.at(0), &owner));
  EXPECT_EQ(owner.kind, BlockKind::Directory);
  s = fsi.check_against(*disk);
  EXPECT_TRUE(s) << s.message();
  run(vol.m("copy") + " " + quote(dir / "tree/names/UPPER.TXT") + " ::/new_after_crawl", &rc);
  ASSERT_EQ(rc, 0);
  if (stats.fat_bits == 32) {  // FSInfo's free count changes; FAT12/16 keep no such field
    s = fsi.check_against(*disk);
    EXPECT_FALSE(s);
    EXPECT_NE(s.message().find("stale index"), std::string::npos) << s.message();
  }
}

// File ids (docs/fat.md): a file with data and a directory keep theirs
// (their first cluster) across a rename and a move to another directory; an
// empty file's id is its entry's location, so moving it renumbers it. The
// expected location comes from TSK, whose FAT32 address of an entry is
// 3 + (entry byte - data region byte) / 32.
TEST(FatIdentity, SurvivesRenameAndMove) {
  TempDir dir("dsvmi-fat-id");
  Volume vol;
  vol.image = dir / "id.img";
  write_file(dir / "t/x/file.bin", 5000, 1);
  write_file(dir / "t/x/sub/inner.txt", 10, 2);
  write_file(dir / "t/x/empty", 0, 3);
  fs::create_directories(dir / "t/y");
  int rc = 0;
  run("mkfs.vfat -F 32 -s 1 -C " + quote(vol.image) + " 65536 >/dev/null && " + vol.m("copy") + " -s -Q " +
          quote(dir / "t") + "/* ::/",
      &rc);
  ASSERT_EQ(rc, 0);
  auto crawl = [&](std::map<std::string, uint64_t>* paths) {
    Status err;
    auto disk = open_disk(vol.image, {}, &err);
    ASSERT_TRUE(disk) << err.message();
    RecordingSink sink;
    ASSERT_TRUE(crawl_fat(*disk, 0, disk->size(), sink));
    EXPECT_EQ(sink.problems_text(), "");
    *paths = crawl_paths(sink, sink.info.root_ino);
  };
  std::map<std::string, uint64_t> before, after;
  crawl(&before);
  run(vol.m("move") + " ::/x/file.bin ::/y/renamed.bin && " + vol.m("move") + " ::/x/sub ::/y/moved_sub && " +
          vol.m("move") + " ::/x/empty ::/y/empty_moved",
      &rc);
  ASSERT_EQ(rc, 0);
  crawl(&after);
  EXPECT_EQ(after.at("/y/renamed.bin"), before.at("/x/file.bin"));
  EXPECT_EQ(after.at("/y/moved_sub"), before.at("/x/sub"));
  EXPECT_EQ(after.at("/y/moved_sub/inner.txt"), before.at("/x/sub/inner.txt"));
  EXPECT_FALSE(after.count("/x/file.bin"));

  const std::string minfo = run(vol.m("info") + " ::");
  const uint64_t data_byte = (std::stoull(minfo_field(minfo, "reserved (boot) sectors:")) +
                              2 * std::stoull(minfo_field(minfo, "Big fatlen"))) *
                             512;
  auto tsk = tsk_paths(vol);
  EXPECT_EQ(after.at("/y/empty_moved"), 0x10000000 + data_byte / 32 + tsk.at("/y/empty_moved").addr - 3);
  EXPECT_NE(after.at("/y/empty_moved"), before.at("/x/empty"));
}

INSTANTIATE_TEST_SUITE_P(
    Variants, FatCrawl,
    ::testing::Values(Variant{"fat32_512b_clusters", "-F 32 -s 1", 65536, ""},
                      Variant{"fat32_4k_clusters", "-F 32 -s 8", 300000, ""},
                      Variant{"fat32_32k_clusters", "-F 32 -s 64", 2200000, ""},
                      Variant{"fat16", "-F 16 -s 4", 65536, ""},
                      Variant{"fat12", "-F 12 -s 8", 8192, ""},
                      Variant{"fat32_in_mbr", "-F 32 -s 1", 65536, "mbr"},
                      Variant{"gpt_esp_and_ext4_root", "-F 32 -s 1", 270336, "gpt"}),
    [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace dsvmi::testing

// ContentHashes (engine/infer/content_hashes.h), the fs-neutral hash upkeep
// every live driver shares, over a fake driver whose "disk" lags behind the
// writes: the hash of each settled state is checked against sha256sum of
// the same bytes written to a file. What it must get right: written bytes
// win over the disk until the consistency point, unchanged files cost
// nothing, a reused inode starts over, lost frames rehash, an over-limit
// file is said once, a storm of small writes stays bounded and correct.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include "../../../engine/infer/content_hashes.h"
#include "../common/shell.h"
#include "../common/temp_dir.h"

namespace dsvmi::infer {
namespace {

struct Collect : EventSink {
  void emit(const Event& e) override { events.push_back(e); }
  std::vector<Event> events;
};

// Files as the driver's model sees them: path, size, and what the disk holds
// (which may not have the latest writes yet).
struct FakeFs : FileContent {
  struct File {
    std::string path;
    std::vector<uint8_t> disk;
    uint64_t size = 0;
  };
  std::map<uint64_t, File> files;
  uint64_t bytes_read = 0;
  bool fail = false;

  bool hashed_file(uint64_t ino, uint64_t* size, std::string* path) override {
    auto it = files.find(ino);
    if (it == files.end()) return false;
    *size = it->second.size;
    *path = it->second.path;
    return true;
  }
  Status read_file(uint64_t ino, uint64_t offset, std::span<uint8_t> out) override {
    if (fail) return Status::error("disk read failed");
    const File& f = files.at(ino);
    for (size_t k = 0; k < out.size(); k++) out[k] = offset + k < f.disk.size() ? f.disk[offset + k] : 0;
    bytes_read += out.size();
    return Status::ok();
  }
};

std::string sha256sum(const std::vector<uint8_t>& bytes) {
  testing::TempDir dir("dsvmi-hash");
  std::ofstream(dir / "f", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return shell::run("sha256sum " + shell::quote(dir / "f")).substr(0, 64);
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1103515245u + 12345u;
    b = uint8_t(x >> 16);
  }
  return v;
}

class ContentHashesTest : public ::testing::Test {
 protected:
  ContentHashesTest() {
    ctx.sink = &sink;
    ctx.options.hash_globs = {"/**"};
    ctx.options.read_back_new_data = true;
  }
  void settle() {
    hashes.settle(fs, out, [](uint64_t ino) {
      Event e;
      e.ino = ino;
      return e;
    });
    out.release_held();
  }
  std::vector<Event> hash_events(uint64_t ino) {
    std::vector<Event> r;
    for (const Event& e : sink.events)
      if (e.kind == EventKind::Hash && e.ino == ino) r.push_back(e);
    return r;
  }

  Collect sink;
  EngineContext ctx;
  FakeFs fs;
  EventOut out{ctx};
  ContentHashes hashes{ctx};
};

TEST_F(ContentHashesTest, WrittenBytesWinOverALaggingDisk) {
  std::vector<uint8_t> content = pattern(3 << 20, 1);
  fs.files[12] = {"/etc/app.conf", content, content.size()};
  hashes.touched(12, true);
  settle();
  ASSERT_EQ(hash_events(12).size(), 1u);
  EXPECT_EQ(hash_events(12)[0].sha256, sha256sum(content));
  EXPECT_EQ(hash_events(12)[0].path, "/etc/app.conf");

  // A write in the middle the disk does not show yet, and an append.
  std::vector<uint8_t> mid = pattern(5000, 2), tail = pattern(777, 3);
  const uint64_t at = (5 << 20) / 2, end = content.size();
  std::copy(mid.begin(), mid.end(), content.begin() + at);
  hashes.written(12, at, mid.data(), mid.size());
  content.insert(content.end(), tail.begin(), tail.end());
  hashes.written(12, end, tail.data(), tail.size());
  fs.files[12].size = content.size();
  hashes.touched(12, true);
  settle();
  ASSERT_EQ(hash_events(12).size(), 2u);
  EXPECT_EQ(hash_events(12)[1].sha256, sha256sum(content));
  // Incremental: from the checkpoint before the write (1 MiB spacing) on.
  EXPECT_LE(hash_events(12)[1].hash_bytes_read, content.size() - (2 << 20));
}

TEST_F(ContentHashesTest, NothingChangedNoEventNoRead) {
  std::vector<uint8_t> content = pattern(10000, 4);
  fs.files[5] = {"/a", content, content.size()};
  hashes.touched(5, true);
  settle();
  const uint64_t read = fs.bytes_read;
  hashes.touched(5, false);  // an attribute change
  settle();
  EXPECT_EQ(hash_events(5).size(), 1u);
  EXPECT_EQ(fs.bytes_read, read);
  // A rename: same digest, new path, nothing read.
  fs.files[5].path = "/b";
  hashes.touched(5, false);
  settle();
  ASSERT_EQ(hash_events(5).size(), 2u);
  EXPECT_EQ(hash_events(5)[1].path, "/b");
  EXPECT_EQ(hash_events(5)[1].sha256, sha256sum(content));
  EXPECT_EQ(fs.bytes_read, read);
}

TEST_F(ContentHashesTest, ReusedInodeAndLostFramesStartOver) {
  std::vector<uint8_t> a = pattern(70000, 5), b = pattern(1000, 6);
  fs.files[9] = {"/x", a, a.size()};
  hashes.touched(9, true);
  settle();
  hashes.forget(9);  // freed and allocated again: a different file
  fs.files[9] = {"/y", b, b.size()};
  hashes.touched(9, true);
  settle();
  ASSERT_EQ(hash_events(9).size(), 2u);
  EXPECT_EQ(hash_events(9)[1].sha256, sha256sum(b));
  // Frames lost: the disk changed behind the engine's back.
  b = pattern(1000, 7);
  fs.files[9].disk = b;
  hashes.lost();
  settle();
  ASSERT_EQ(hash_events(9).size(), 3u);
  EXPECT_EQ(hash_events(9)[2].sha256, sha256sum(b));
}

TEST_F(ContentHashesTest, OverTheLimitSaidOnceReadFailureSaid) {
  ctx.options.hash_max_bytes = 4096;
  std::vector<uint8_t> big = pattern(5000, 8);
  fs.files[3] = {"/big", big, big.size()};
  hashes.touched(3, true);
  settle();
  hashes.written(3, 0, big.data(), 100);
  hashes.touched(3, true);
  settle();
  ASSERT_EQ(hash_events(3).size(), 1u);
  EXPECT_TRUE(hash_events(3)[0].sha256.empty());
  EXPECT_NE(hash_events(3)[0].hash_skipped.find("over the hash limit"), std::string::npos);

  std::vector<uint8_t> small = pattern(100, 9);
  fs.files[4] = {"/small", small, small.size()};
  fs.fail = true;
  hashes.touched(4, true);
  settle();
  ASSERT_EQ(hash_events(4).size(), 1u);
  EXPECT_NE(hash_events(4)[0].hash_skipped.find("disk read failed"), std::string::npos);
  fs.fail = false;  // the next change hashes it from scratch
  hashes.touched(4, true);
  settle();
  ASSERT_EQ(hash_events(4).size(), 2u);
  EXPECT_EQ(hash_events(4)[1].sha256, sha256sum(small));
}

TEST_F(ContentHashesTest, WriteStormStaysCorrect) {
  std::vector<uint8_t> content = pattern(1 << 20, 10);
  fs.files[7] = {"/storm", content, content.size()};
  hashes.touched(7, true);
  settle();
  // More small writes than the range list keeps, none on the disk yet.
  for (uint64_t k = 0; k < 10000; k++) {
    const uint64_t off = (k * 7919) % (content.size() - 8);
    const uint8_t v[8] = {uint8_t(k), uint8_t(k >> 8), 1, 2, 3, 4, 5, 6};
    std::copy(v, v + 8, content.begin() + off);
    hashes.written(7, off, v, 8);
  }
  settle();
  ASSERT_EQ(hash_events(7).size(), 2u);
  EXPECT_EQ(hash_events(7)[1].sha256, sha256sum(content));
}

TEST_F(ContentHashesTest, TextChangesCarryAUnifiedDiffBinaryOnesTheirRanges) {
  std::string v1 = "Port 22\nPermitRootLogin no\nUsePAM yes\n";
  std::string v2 = "Port 22\nPermitRootLogin yes\nUsePAM yes\nX11Forwarding yes\n";
  fs.files[20] = {"/etc/ssh/sshd_config", std::vector<uint8_t>(v1.begin(), v1.end()), v1.size()};
  hashes.touched(20, true);
  settle();
  ASSERT_EQ(hash_events(20).size(), 1u);
  EXPECT_TRUE(hash_events(20)[0].diff.empty());  // nothing to compare with yet
  hashes.written(20, 0, reinterpret_cast<const uint8_t*>(v2.data()), v2.size());
  fs.files[20].size = v2.size();
  hashes.touched(20, true);
  settle();
  ASSERT_EQ(hash_events(20).size(), 2u);
  const Event e = hash_events(20)[1];
  EXPECT_EQ(e.diff_added, 2u);
  EXPECT_EQ(e.diff_removed, 1u);
  // patch(1) turns the old version into the new one with it.
  testing::TempDir dir("dsvmi-hashdiff");
  std::ofstream(dir / "f") << v1;
  std::ofstream(dir / "p") << e.diff;
  int rc = 0;
  shell::run("patch -s " + shell::quote(dir / "f") + " " + shell::quote(dir / "p"), &rc);
  ASSERT_EQ(rc, 0) << e.diff;
  std::ifstream in(dir / "f");
  std::string patched((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(patched, v2);
  EXPECT_EQ(e.diff.substr(0, e.diff.find('\n')), "--- a/etc/ssh/sshd_config");

  // Binary: the ranges written, merged, plus what the size change added.
  std::vector<uint8_t> bin = pattern(100000, 11);
  bin[5] = 0;
  fs.files[21] = {"/bin/tool", bin, bin.size()};
  hashes.touched(21, true);
  settle();
  const uint8_t w[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  hashes.written(21, 1000, w, 10);
  hashes.written(21, 1005, w, 10);
  hashes.written(21, 50000, w, 10);
  fs.files[21].disk.resize(100100);
  fs.files[21].size = 100100;
  hashes.touched(21, true);
  settle();
  ASSERT_EQ(hash_events(21).size(), 2u);
  const Event b = hash_events(21)[1];
  EXPECT_TRUE(b.diff.empty());
  using R = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(b.changed_ranges, (R{{1000, 15}, {50000, 10}, {100000, 100}}));
}

TEST_F(ContentHashesTest, OffWithoutGlobsOrALiveDisk) {
  ctx.options.hash_globs.clear();
  fs.files[1] = {"/f", pattern(10, 1), 10};
  hashes.touched(1, true);
  settle();
  EXPECT_TRUE(sink.events.empty());
}

}  // namespace
}  // namespace dsvmi::infer

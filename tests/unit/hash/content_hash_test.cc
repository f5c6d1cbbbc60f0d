// ContentHasher against outside oracles: coreutils' sha256sum of the same
// file, and an RFC 6962 tree computed by Python's hashlib over it.
#include "dsvmi/content_hash.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "tests/unit/common/shell.h"
#include "tests/unit/common/temp_dir.h"

namespace dsvmi {
namespace {

constexpr uint32_t kLeaf = 4096;

// The file the hasher follows, with the ranges each step wrote.
class File {
 public:
  explicit File(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  }
  ~File() { ::close(fd_); }
  void write(uint64_t off, uint64_t len, std::mt19937_64* rng) {
    std::vector<uint8_t> b(len);
    for (auto& c : b) c = static_cast<uint8_t>((*rng)());
    ASSERT_EQ(::pwrite(fd_, b.data(), len, off), static_cast<ssize_t>(len));
  }
  void truncate(uint64_t size) { ASSERT_EQ(::ftruncate(fd_, size), 0); }
  uint64_t size() const { return ::lseek(fd_, 0, SEEK_END); }
  ContentReader reader() {
    return [this](uint64_t off, std::span<uint8_t> out) {
      ++reads;
      ssize_t n = ::pread(fd_, out.data(), out.size(), off);
      if (n != static_cast<ssize_t>(out.size())) return Status::error("short read");
      return Status::ok();
    };
  }
  std::string sha256sum() const {
    std::string out = shell::run("sha256sum " + shell::quote(path_));
    return out.substr(0, 64);
  }
  std::string rfc6962_root(uint32_t leaf) const {
    std::string py =
        "import hashlib,sys\n"
        "d=open(sys.argv[1],'rb').read();L=int(sys.argv[2])\n"
        "def mth(v):\n"
        "  if not v: return hashlib.sha256(b'').digest()\n"
        "  if len(v)==1: return hashlib.sha256(b'\\x00'+v[0]).digest()\n"
        "  k=1\n"
        "  while k*2<len(v): k*=2\n"
        "  return hashlib.sha256(b'\\x01'+mth(v[:k])+mth(v[k:])).digest()\n"
        "print(mth([d[i:i+L] for i in range(0,len(d),L)]).hex())\n";
    std::string out =
        shell::run("python3 -c " + shell::quote(py) + " " + shell::quote(path_) + " " + std::to_string(leaf));
    return out.substr(0, 64);
  }
  int reads = 0;

 private:
  std::string path_;
  int fd_ = -1;
};

std::unique_ptr<ContentHasher> make(uint64_t checkpoint, uint32_t max_cps, uint32_t leaf) {
  std::unique_ptr<ContentHasher> h;
  ContentHasher::Options o;
  o.checkpoint_bytes = checkpoint;
  o.max_checkpoints = max_cps;
  o.leaf_bytes = leaf;
  EXPECT_TRUE(ContentHasher::Create(o, &h));
  return h;
}

TEST(ContentHash, EmptyFileMatchesTheOracles) {
  testing::TempDir dir("dsvmi-hash");
  File f(dir / "f");
  auto h = make(1 << 16, 16, kLeaf);
  EXPECT_EQ(digest_hex(h->sha256()), f.sha256sum());
  EXPECT_EQ(digest_hex(h->tree_root()), f.rfc6962_root(kLeaf));
}

// Appends, writes in the middle, truncations and whole rewrites in random
// order: after each, both hashes equal the oracles'.
TEST(ContentHash, RandomEditsMatchSha256sumAndRfc6962) {
  testing::TempDir dir("dsvmi-hash");
  File f(dir / "f");
  // Small checkpoints and a low cap so thinning happens many times.
  auto h = make(64 * 8, 6, 512);
  std::mt19937_64 rng(7);
  for (int step = 0; step < 120; ++step) {
    uint64_t size = f.size();
    std::vector<ChangedRange> changed;
    int op = static_cast<int>(rng() % 4);
    if (op == 0 || size == 0) {  // append
      uint64_t n = 1 + rng() % 5000;
      f.write(size, n, &rng);
    } else if (op == 1) {  // middle (maybe past the end)
      uint64_t off = rng() % size, n = 1 + rng() % 3000;
      f.write(off, n, &rng);
      changed.push_back({off, n});
    } else if (op == 2) {  // truncate down
      f.truncate(rng() % size);
    } else {  // rewrite everything at a new size
      f.truncate(0);
      uint64_t n = rng() % 20000;
      if (n) f.write(0, n, &rng);
      changed.push_back({0, n});
    }
    HashCost cost;
    ASSERT_TRUE(h->update(f.size(), changed, f.reader(), &cost)) << "step " << step;
    ASSERT_EQ(h->size(), f.size());
    ASSERT_EQ(digest_hex(h->sha256()), f.sha256sum()) << "step " << step << " op " << op;
    ASSERT_EQ(digest_hex(h->tree_root()), f.rfc6962_root(512)) << "step " << step << " op " << op;
  }
}

// A 4 KiB append to a 64 MiB file reads the new 4 KiB (and the rest of the
// leaf it starts in), not the file.
TEST(ContentHash, AppendReadsOnlyTheNewBytes) {
  testing::TempDir dir("dsvmi-hash");
  File f(dir / "log");
  std::mt19937_64 rng(1);
  f.write(0, 64 << 20, &rng);
  auto h = make(1 << 20, 1024, 64 << 10);
  HashCost first;
  ASSERT_TRUE(h->rehash(f.size(), f.reader(), &first));
  EXPECT_EQ(first.bytes_read, 64u << 20);
  f.write(64 << 20, 4096, &rng);
  HashCost cost;
  ASSERT_TRUE(h->update(f.size(), {}, f.reader(), &cost));
  EXPECT_LE(cost.bytes_read, 4096u + (64 << 10));
  EXPECT_EQ(digest_hex(h->sha256()), f.sha256sum());
  EXPECT_EQ(digest_hex(h->tree_root()), f.rfc6962_root(64 << 10));
}

// A write in the middle re-reads from the checkpoint before it to the end.
TEST(ContentHash, MiddleWriteReadsFromTheCheckpointBeforeIt) {
  testing::TempDir dir("dsvmi-hash");
  File f(dir / "db");
  std::mt19937_64 rng(2);
  f.write(0, 16 << 20, &rng);
  auto h = make(1 << 20, 1024, 64 << 10);
  ASSERT_TRUE(h->rehash(f.size(), f.reader(), nullptr));
  uint64_t off = (12 << 20) + 12345;
  f.write(off, 100, &rng);
  HashCost cost;
  ChangedRange r{off, 100};
  ASSERT_TRUE(h->update(f.size(), std::span<const ChangedRange>(&r, 1), f.reader(), &cost));
  EXPECT_EQ(cost.bytes_read, (16u << 20) - (12u << 20));
  EXPECT_EQ(digest_hex(h->sha256()), f.sha256sum());
  EXPECT_EQ(digest_hex(h->tree_root()), f.rfc6962_root(64 << 10));
}

// A reader that fails (a disk read error, a detached disk) leaves the
// hasher as it was, and the error names the range.
TEST(ContentHash, FailedReadChangesNothing) {
  testing::TempDir dir("dsvmi-hash");
  File f(dir / "f");
  std::mt19937_64 rng(3);
  f.write(0, 10000, &rng);
  auto h = make(1 << 12, 16, kLeaf);
  ASSERT_TRUE(h->rehash(f.size(), f.reader(), nullptr));
  std::string before = digest_hex(h->sha256());
  ContentReader broken = [](uint64_t, std::span<uint8_t>) { return Status::error("EIO"); };
  Status s = h->update(20000, {}, broken, nullptr);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("EIO"), std::string::npos);
  EXPECT_EQ(h->size(), 10000u);
  EXPECT_EQ(digest_hex(h->sha256()), before);
}

TEST(ContentHash, BadOptionsAreRefused) {
  std::unique_ptr<ContentHasher> h;
  ContentHasher::Options o;
  o.checkpoint_bytes = 100;
  EXPECT_FALSE(ContentHasher::Create(o, &h));
  o = {};
  o.leaf_bytes = 3000;
  EXPECT_FALSE(ContentHasher::Create(o, &h));
  o = {};
  o.max_checkpoints = 1;
  EXPECT_FALSE(ContentHasher::Create(o, &h));
}

}  // namespace
}  // namespace dsvmi

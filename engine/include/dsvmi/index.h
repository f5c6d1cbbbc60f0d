// Index: the crawl index file (engine/index/index.fbs), opened read-only.
//
// Opening maps the file and verifies its structure in O(1) time (FlatBuffers
// Verifier over vectors of fixed-size records, plus the small kind bitmaps);
// nothing per inode is parsed. Records are materialized one at a time when
// asked for (lazy loading, docs/index.md), and every cross reference inside a
// record is bounds-checked then: the file derives from guest data, so a
// damaged or hostile index yields an error naming the problem, never a crash.
//
// Thread safety: const methods may be called concurrently except kind_bitmap(),
// whose first call per kind materializes a CRoaring bitmap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/fs_model.h"
#include "dsvmi/status.h"

typedef struct roaring_bitmap_s roaring_bitmap_t;

namespace dsvmi {

namespace fb {
struct Filesystem;
struct Index;
}  // namespace fb

// Version of the index layout; bumped on any incompatible schema change.
inline constexpr uint32_t kIndexFormatVersion = 1;

// Bounds that keep path work finite on hostile indexes.
inline constexpr int kMaxPathDepth = 4096;       // components walked up to the root
inline constexpr size_t kMaxPathBytes = 1 << 20;  // one reconstructed path

// Which inode (and which of its blocks) a file-system block belongs to.
struct BlockOwner {
  BlockKind kind = BlockKind::Free;
  uint64_t ino = 0;      // 0: file-system-wide metadata or free
  uint64_t logical = 0;  // logical block within ino (data blocks only)
};

// One name of an inode: the directory holding it and the entry's name.
struct Link {
  uint64_t parent = 0;
  std::string name;
};

// One file system of the index.
class FsIndex {
 public:
  FilesystemInfo info() const;
  uint64_t files() const;
  uint64_t directories() const;
  uint64_t metadata_blocks() const;
  uint64_t indexed_inodes() const;  // in-use inodes stored
  // Whether inode() reports each inode's real i_generation (indexes written
  // before generations were kept report 0 for every inode).
  bool generations_known() const;
  std::vector<CrawlProblem> problems() const;

  // Materializes inode `ino` (attributes, extents, symlink target).
  // Not found or damaged record: error.
  Status inode(uint64_t ino, Inode* out) const;

  // Entries of directory `dir_ino`, in name order.
  Status list(uint64_t dir_ino, std::vector<DirEntry>* out) const;
  // Entry `name` of directory `dir_ino`.
  Status find(uint64_t dir_ino, std::string_view name, DirEntry* out) const;
  // Resolves an absolute path ("/", "/a/b"); symlinks are not followed.
  Status lookup(std::string_view path, uint64_t* ino) const;

  // Every name of `ino` (all hard links). Root has none.
  Status links(uint64_t ino, std::vector<Link>* out) const;
  // Every full path of `ino` (one per link; bounded depth; cycle-safe).
  Status paths(uint64_t ino, std::vector<std::string>* out) const;
  // The first full path of `ino`.
  Status path(uint64_t ino, std::string* out) const;

  // Reverse map: what fs block `block` is.
  Status owner(uint64_t block, BlockOwner* out) const;
  // Blocks of one metadata kind (not FileData/Free); nullptr if none.
  // The bitmap lives as long as the Index.
  const roaring_bitmap_t* kind_bitmap(BlockKind kind) const;
  // Calls fn(first, count, ino, logical) for every data extent whose blocks
  // overlap [first, first + count), in physical order. Stops on false.
  template <typename Fn>
  void for_each_extent_in(uint64_t first, uint64_t count, Fn&& fn) const;

  // Compares the index's identity with the file system on `disk`: a
  // re-formatted (new UUID), resized or since-written file system makes the
  // index stale, and the error says which.
  Status check_against(DiskReader& disk) const;

  struct ExtentRef {
    uint64_t physical, length, ino, logical;
  };
  // Extent number i in physical order (0 <= i < extent_count()); false if damaged.
  bool extent_by_physical(size_t i, ExtentRef* out) const;
  size_t extent_count() const;

 private:
  friend class Index;
  explicit FsIndex(const fb::Filesystem* fs);
  const fb::Filesystem* fs_;
  mutable std::vector<roaring_bitmap_t*> bitmaps_;  // by BlockKind, lazily built
  mutable std::vector<bool> bitmap_tried_;
  size_t lower_extent_by_physical(uint64_t block) const;
  Status owner_of_extent(uint32_t extent_index, uint64_t* ino) const;
 public:
  ~FsIndex();
  FsIndex(const FsIndex&) = delete;
  FsIndex& operator=(const FsIndex&) = delete;
  FsIndex(FsIndex&&) noexcept;
};

class Index {
 public:
  // Maps and verifies `path`. Errors: missing file, not an index, damaged.
  static std::unique_ptr<Index> open(const std::string& path, Status* error);
  // Verifies a copy of `data` (fuzzing, tests).
  static std::unique_ptr<Index> from_bytes(const void* data, size_t size, Status* error);
  // Verifies `data` in place; it must outlive the Index and stay 8-aligned.
  static std::unique_ptr<Index> view_bytes(const void* data, size_t size, Status* error);
  ~Index();

  uint32_t format_version() const;
  uint64_t generation() const;
  int64_t crawl_time_ns() const;
  uint64_t disk_size() const;
  std::string source() const;
  size_t file_bytes() const { return size_; }

  const std::vector<FsIndex>& filesystems() const { return filesystems_; }

  // Checks every file system against `disk` (size and identity).
  Status check_against(DiskReader& disk) const;

 private:
  Index() = default;
  Status init();
  void* map_ = nullptr;           // mmap'ed file (or nullptr)
  std::vector<uint8_t> owned_;    // from_bytes copy
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  const fb::Index* root_ = nullptr;
  std::vector<FsIndex> filesystems_;
};

// --- template implementation -------------------------------------------------

template <typename Fn>
void FsIndex::for_each_extent_in(uint64_t first, uint64_t count, Fn&& fn) const {
  // Extents do not overlap on a sane file system, so the extent starting at or
  // before `first` plus those starting inside the range are all candidates.
  const size_t n = extent_count();
  size_t i = lower_extent_by_physical(first);
  if (i > 0) --i;
  for (; i < n; ++i) {
    ExtentRef e;
    if (!extent_by_physical(i, &e)) continue;
    if (e.physical >= first + count) break;
    if (e.physical + e.length <= first) continue;
    if (!fn(e.physical, e.length, e.ino, e.logical)) return;
  }
}

}  // namespace dsvmi

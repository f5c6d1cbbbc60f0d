// Index reader: O(1) open (mmap + FlatBuffers Verifier + the small kind
// bitmaps), then per-record, bounds-checked materialization.
#include <fcntl.h>
#include <roaring/roaring.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "dsvmi/fs_identity.h"
#include "dsvmi/index.h"
#include "index_generated.h"
#include "mode_bits.h"
#include "roaring_check.h"

namespace dsvmi {
namespace {

constexpr size_t kKinds = size_t(BlockKind::Reserved) + 1;
constexpr size_t kMaxIndexBytes = size_t(1) << 31;  // FlatBuffers' own limit

// A FlatBuffers vector (possibly absent) as a plain span.
template <typename T>
struct Span {
  const T* data = nullptr;
  size_t size = 0;
  const T& operator[](size_t i) const { return data[i]; }
};

template <typename T>
Span<T> structs(const flatbuffers::Vector<const T*>* v) {
  if (!v) return {};
  return {reinterpret_cast<const T*>(v->Data()), v->size()};
}
template <typename T>
Span<T> scalars(const flatbuffers::Vector<T>* v) {
  if (!v) return {};
  return {reinterpret_cast<const T*>(v->Data()), v->size()};
}

// Scalars in the vectors are little-endian; this project targets x86-64/arm64
// little-endian hosts only (static_assert below), so they are read in place.
static_assert(std::endian::native == std::endian::little, "index reader assumes little-endian");

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

}  // namespace

// --- FsIndex ------------------------------------------------------------------

FsIndex::FsIndex(const fb::Filesystem* fs)
    : fs_(fs), bitmaps_(kKinds, nullptr), bitmap_tried_(kKinds, false) {}

FsIndex::FsIndex(FsIndex&& o) noexcept
    : fs_(o.fs_), bitmaps_(std::move(o.bitmaps_)), bitmap_tried_(std::move(o.bitmap_tried_)) {
  o.bitmaps_.assign(kKinds, nullptr);
}

FsIndex::~FsIndex() {
  for (auto* b : bitmaps_)
    if (b) roaring_bitmap_free(b);  // 0.2.66 does not accept nullptr
}

FilesystemInfo FsIndex::info() const {
  FilesystemInfo i;
  i.type = str(fs_->type());
  i.uuid = str(fs_->uuid());
  i.label = str(fs_->label());
  i.partition_offset = fs_->partition_offset();
  i.partition_size = fs_->partition_size();
  i.block_size = fs_->block_size();
  i.block_count = fs_->block_count();
  i.inode_count = fs_->inode_count();
  i.root_ino = fs_->root_ino();
  i.inode_size = fs_->inode_size();
  i.journal_ino = fs_->journal_ino();
  return i;
}

uint64_t FsIndex::files() const { return fs_->files(); }
uint64_t FsIndex::directories() const { return fs_->directories(); }
uint64_t FsIndex::metadata_blocks() const { return fs_->metadata_blocks(); }
uint64_t FsIndex::indexed_inodes() const { return fs_->inodes() ? fs_->inodes()->size() : 0; }
bool FsIndex::generations_known() const {
  // Only a vector exactly parallel to the inodes counts: anything else is a
  // damaged (or older) index, and then no generation is trusted.
  return fs_->inode_generations() && fs_->inodes() && fs_->inode_generations()->size() == fs_->inodes()->size();
}
size_t FsIndex::extent_count() const { return scalars(fs_->extents_by_physical()).size; }

std::vector<CrawlProblem> FsIndex::problems() const {
  std::vector<CrawlProblem> out;
  if (!fs_->problems()) return out;
  for (const auto* p : *fs_->problems()) out.push_back({p->ino(), p->block(), str(p->what())});
  if (fs_->problems_dropped())
    out.push_back({0, 0, std::to_string(fs_->problems_dropped()) + " more problems not stored"});
  return out;
}

namespace {

// Index of the record whose key equals `key` in a vector sorted by key, or -1.
template <typename T, typename Key>
long find_sorted(Span<T> v, uint64_t key, Key key_of) {
  size_t lo = 0, hi = v.size;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (key_of(v[mid]) < key) lo = mid + 1; else hi = mid;
  }
  return (lo < v.size && key_of(v[lo]) == key) ? long(lo) : -1;
}

std::string_view pool_slice(Span<uint8_t> pool, uint64_t off, uint64_t len, bool* ok) {
  if (off > pool.size || len > pool.size - off) {
    *ok = false;
    return {};
  }
  return std::string_view(reinterpret_cast<const char*>(pool.data) + off, len);
}

std::string damaged(const std::string& what) { return "damaged index: " + what; }

// base + offset seconds as nanoseconds; false when that does not fit an int64.
bool seconds_to_ns(int64_t base, uint32_t offset, int64_t* ns) {
  int64_t s = 0;
  return !__builtin_add_overflow(base, int64_t(offset), &s) && !__builtin_mul_overflow(s, int64_t(1000000000), ns);
}

}  // namespace

Status FsIndex::inode(uint64_t ino, Inode* out) const {
  auto inodes = structs(fs_->inodes());
  long i = find_sorted(inodes, ino, [](const fb::InodeRecord& r) { return uint64_t(r.ino()); });
  if (i < 0) return Status::error("inode " + std::to_string(ino) + " is not in the index");
  const fb::InodeRecord& r = inodes[i];
  auto extents = structs(fs_->extents());
  const uint64_t first = r.first_extent();
  const uint64_t end = size_t(i) + 1 < inodes.size ? inodes[i + 1].first_extent() : extents.size;
  if (first > end || end > extents.size)
    return Status::error(damaged("extent range of inode " + std::to_string(ino)));
  Inode in;
  in.ino = ino;
  in.type = file_type_of_mode(r.mode());
  in.mode = r.mode() & 07777;
  auto owners = structs(fs_->owners());
  if (r.owner() >= owners.size) return Status::error(damaged("owner of inode " + std::to_string(ino)));
  in.uid = owners[r.owner()].uid();
  in.gid = owners[r.owner()].gid();
  const uint64_t size = uint64_t(r.size_lo()) | uint64_t(r.size_hi()) << 32;
  if (in.type == FileType::CharDevice || in.type == FileType::BlockDevice) in.rdev = size; else in.size = size;
  in.links = r.links();
  if (generations_known()) in.generation = fs_->inode_generations()->Get(static_cast<flatbuffers::uoffset_t>(i));
  // The builder keeps base + offset within the nanosecond range; anything else is damage.
  const int64_t base = fs_->time_base();
  if (!seconds_to_ns(base, r.mtime(), &in.mtime_ns) || !seconds_to_ns(base, r.ctime(), &in.ctime_ns))
    return Status::error(damaged("time of inode " + std::to_string(ino) + " (time base " + std::to_string(base) + ")"));
  in.extents.reserve(end - first);
  for (uint64_t k = first; k < end; ++k) {
    const auto& e = extents[k];
    in.extents.push_back({e.logical(), e.physical(), e.length() & 0x7FFFFFFFu, (e.length() >> 31) != 0});
  }
  if (in.type == FileType::Symlink) {
    auto links = structs(fs_->symlinks());
    long s = find_sorted(links, ino, [](const fb::SymlinkRecord& l) { return uint64_t(l.ino()); });
    if (s >= 0) {
      bool ok = true;
      auto t = pool_slice(scalars(fs_->names()), links[s].target_offset(), links[s].target_length(), &ok);
      if (!ok) return Status::error(damaged("symlink target of inode " + std::to_string(ino)));
      in.symlink_target = std::string(t);
    }
  }
  *out = std::move(in);
  return Status::ok();
}

namespace {

struct EntryRange {
  size_t first = 0, end = 0;
};

}  // namespace

static Status entry_range(const fb::Filesystem* fs, uint64_t dir, EntryRange* out) {
  auto dirs = structs(fs->directory_index());
  auto entries = structs(fs->entries());
  long d = find_sorted(dirs, dir, [](const fb::DirectoryRecord& r) { return uint64_t(r.ino()); });
  if (d < 0) {
    *out = {};
    return Status::ok();  // a directory without entries
  }
  const size_t first = dirs[d].first_entry();
  const size_t end = size_t(d) + 1 < dirs.size ? dirs[d + 1].first_entry() : entries.size;
  if (first > end || end > entries.size)
    return Status::error(damaged("entry range of directory " + std::to_string(dir)));
  *out = {first, end};
  return Status::ok();
}

static Status entry_at(const fb::Filesystem* fs, size_t k, DirEntry* out) {
  auto entries = structs(fs->entries());
  if (k >= entries.size) return Status::error(damaged("directory entry " + std::to_string(k) + " out of range"));
  const auto& e = entries[k];
  bool ok = true;
  auto name = pool_slice(scalars(fs->names()), e.name_offset(), e.name_length(), &ok);
  if (!ok) return Status::error(damaged("name of directory entry " + std::to_string(k)));
  out->ino = e.child();
  out->type = e.type() <= uint8_t(FileType::Socket) ? FileType(e.type()) : FileType::Unknown;
  out->name = std::string(name);
  return Status::ok();
}

Status FsIndex::list(uint64_t dir_ino, std::vector<DirEntry>* out) const {
  EntryRange r;
  Status s = entry_range(fs_, dir_ino, &r);
  if (!s) return s;
  out->clear();
  out->reserve(r.end - r.first);
  for (size_t k = r.first; k < r.end; ++k) {
    DirEntry e;
    if (!(s = entry_at(fs_, k, &e))) return s;
    out->push_back(std::move(e));
  }
  return Status::ok();
}

Status FsIndex::find(uint64_t dir_ino, std::string_view name, DirEntry* out) const {
  EntryRange r;
  Status s = entry_range(fs_, dir_ino, &r);
  if (!s) return s;
  auto entries = structs(fs_->entries());
  auto pool = scalars(fs_->names());
  size_t lo = r.first, hi = r.end;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    bool ok = true;
    auto n = pool_slice(pool, entries[mid].name_offset(), entries[mid].name_length(), &ok);
    if (!ok) return Status::error(damaged("name of directory entry " + std::to_string(mid)));
    if (n < name) lo = mid + 1; else hi = mid;
  }
  if (lo < r.end) {
    DirEntry e;
    if (!(s = entry_at(fs_, lo, &e))) return s;
    if (e.name == name) {
      *out = std::move(e);
      return Status::ok();
    }
  }
  return Status::error("no entry '" + std::string(name) + "' in directory inode " + std::to_string(dir_ino));
}

Status FsIndex::lookup(std::string_view path, uint64_t* ino) const {
  if (path.empty() || path[0] != '/') return Status::error("path must be absolute: '" + std::string(path) + "'");
  std::vector<uint64_t> stack{fs_->root_ino()};
  size_t pos = 0;
  while (pos < path.size()) {
    while (pos < path.size() && path[pos] == '/') ++pos;
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(pos, end - pos);
    pos = end;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    if (stack.size() > size_t(kMaxPathDepth)) return Status::error("path too deep");
    DirEntry e;
    Status s = find(stack.back(), comp, &e);
    if (!s) return Status::error(std::string(path) + ": no such file or directory");
    stack.push_back(e.ino);
  }
  *ino = stack.back();
  return Status::ok();
}

Status FsIndex::links(uint64_t ino, std::vector<Link>* out) const {
  auto entries = structs(fs_->entries());
  auto by_child = scalars(fs_->entries_by_child());
  auto dirs = structs(fs_->directory_index());
  auto child_at = [&](size_t k) -> uint64_t {
    uint32_t e = by_child[k];
    return e < entries.size ? entries[e].child() : 0;
  };
  size_t lo = 0, hi = by_child.size;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (child_at(mid) < ino) lo = mid + 1; else hi = mid;
  }
  out->clear();
  for (size_t k = lo; k < by_child.size && child_at(k) == ino; ++k) {
    const uint32_t e = by_child[k];
    if (e >= entries.size) return Status::error(damaged("entry order"));
    // The parent is the directory whose entry range holds e.
    size_t dlo = 0, dhi = dirs.size;
    while (dlo < dhi) {
      size_t mid = dlo + (dhi - dlo) / 2;
      if (dirs[mid].first_entry() <= e) dlo = mid + 1; else dhi = mid;
    }
    if (dlo == 0) return Status::error(damaged("entry " + std::to_string(e) + " has no directory"));
    DirEntry de;
    Status s = entry_at(fs_, e, &de);
    if (!s) return s;
    out->push_back({dirs[dlo - 1].ino(), std::move(de.name)});
    if (out->size() > 65536) return Status::error(damaged("inode " + std::to_string(ino) + " has over 65536 links"));
  }
  return Status::ok();
}

Status FsIndex::paths(uint64_t ino, std::vector<std::string>* out) const {
  out->clear();
  const uint64_t root = fs_->root_ino();
  if (ino == root) {
    out->push_back("/");
    return Status::ok();
  }
  std::vector<Link> first;
  Status s = links(ino, &first);
  if (!s) return s;
  if (first.empty()) return Status::error("inode " + std::to_string(ino) + " has no name (orphan)");
  for (const Link& l : first) {
    std::vector<Link> holder{l};  // owns the names walked so far
    holder.reserve(64);
    std::unordered_set<uint64_t> seen{ino};
    uint64_t dir = l.parent;
    size_t bytes = l.name.size();
    int depth = 0;
    std::vector<Link> up;
    while (dir != root) {
      if (++depth > kMaxPathDepth) return Status::error("path of inode " + std::to_string(ino) + " is too deep");
      if (!seen.insert(dir).second)
        return Status::error(damaged("directory cycle through inode " + std::to_string(dir)));
      if (!(s = links(dir, &up))) return s;
      if (up.empty()) return Status::error("directory inode " + std::to_string(dir) + " has no name (orphan)");
      bytes += up[0].name.size() + 1;
      if (bytes > kMaxPathBytes) return Status::error("path of inode " + std::to_string(ino) + " is too long");
      holder.push_back(std::move(up[0]));
      dir = holder.back().parent;
    }
    std::string p;
    p.reserve(bytes + 1);
    for (size_t k = holder.size(); k-- > 0;) {
      p += '/';
      p += holder[k].name;
    }
    out->push_back(std::move(p));
  }
  return Status::ok();
}

Status FsIndex::path(uint64_t ino, std::string* out) const {
  std::vector<std::string> all;
  Status s = paths(ino, &all);
  if (!s) return s;
  *out = std::move(all.front());
  return Status::ok();
}

const roaring_bitmap_t* FsIndex::kind_bitmap(BlockKind kind) const {
  const size_t k = size_t(kind);
  if (k >= kKinds) return nullptr;
  if (!bitmap_tried_[k]) {
    bitmap_tried_[k] = true;
    if (fs_->kinds()) {
      for (const auto* kb : *fs_->kinds()) {
        if (kb->kind() != k || !kb->roaring()) continue;
        // Validated by Index::init(); deserialize_safe bounds-checks again.
        bitmaps_[k] = roaring_bitmap_portable_deserialize_safe(
            reinterpret_cast<const char*>(kb->roaring()->Data()), kb->roaring()->size());
        break;
      }
    }
  }
  return bitmaps_[k];
}

size_t FsIndex::lower_extent_by_physical(uint64_t block) const {
  auto order = scalars(fs_->extents_by_physical());
  auto extents = structs(fs_->extents());
  auto phys = [&](size_t k) -> uint64_t {
    return order[k] < extents.size ? extents[order[k]].physical() : UINT64_MAX;
  };
  size_t lo = 0, hi = order.size;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (phys(mid) <= block) lo = mid + 1; else hi = mid;
  }
  return lo;  // first extent starting after `block`
}

Status FsIndex::owner_of_extent(uint32_t e, uint64_t* ino) const {
  auto inodes = structs(fs_->inodes());
  size_t lo = 0, hi = inodes.size;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (inodes[mid].first_extent() <= e) lo = mid + 1; else hi = mid;
  }
  if (lo == 0) return Status::error(damaged("extent " + std::to_string(e) + " has no inode"));
  *ino = inodes[lo - 1].ino();
  return Status::ok();
}

bool FsIndex::extent_by_physical(size_t i, ExtentRef* out) const {
  auto order = scalars(fs_->extents_by_physical());
  auto extents = structs(fs_->extents());
  if (i >= order.size || order[i] >= extents.size) return false;
  const auto& e = extents[order[i]];
  uint64_t ino;
  if (!owner_of_extent(order[i], &ino)) return false;
  *out = {e.physical(), e.length() & 0x7FFFFFFFu, ino, e.logical()};
  return true;
}

Status FsIndex::owner(uint64_t block, BlockOwner* out) const {
  *out = {};
  if (block >= fs_->block_count())
    return Status::error("block " + std::to_string(block) + " is beyond the file system (" +
                         std::to_string(fs_->block_count()) + " blocks)");
  // File-system-wide and per-inode metadata first: on a damaged file system
  // where data claims a metadata block, the metadata meaning is the safe one.
  static constexpr BlockKind kMeta[] = {BlockKind::Superblock, BlockKind::GroupDescriptors,
                                        BlockKind::BlockBitmap, BlockKind::InodeBitmap,
                                        BlockKind::InodeTable, BlockKind::MapNode,
                                        BlockKind::Xattr, BlockKind::Reserved};
  for (BlockKind k : kMeta) {
    const roaring_bitmap_t* b = kind_bitmap(k);
    if (b && roaring_bitmap_contains(b, uint32_t(block))) {
      out->kind = k;
      auto owned = structs(fs_->owned_runs());
      size_t lo = 0, hi = owned.size;
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (owned[mid].first() <= block) lo = mid + 1; else hi = mid;
      }
      if (lo > 0 && block - owned[lo - 1].first() < owned[lo - 1].count()) out->ino = owned[lo - 1].owner();
      return Status::ok();
    }
  }
  size_t i = lower_extent_by_physical(block);
  if (i > 0) {
    ExtentRef e;
    if (!extent_by_physical(i - 1, &e)) return Status::error(damaged("extent order"));
    if (block - e.physical < e.length) {
      out->ino = e.ino;
      out->logical = e.logical + (block - e.physical);
      const roaring_bitmap_t* dirs = kind_bitmap(BlockKind::Directory);
      if (dirs && roaring_bitmap_contains(dirs, uint32_t(block)))
        out->kind = BlockKind::Directory;
      else if (fs_->journal_ino() && e.ino == fs_->journal_ino())
        out->kind = BlockKind::Journal;
      else
        out->kind = BlockKind::FileData;
    }
  }
  return Status::ok();
}

Status FsIndex::check_against(DiskReader& disk) const {
  const std::string where = str(fs_->type()) + " file system at offset " + std::to_string(fs_->partition_offset());
  FsIdentity now;
  Status s = read_fs_identity(disk, str(fs_->type()), fs_->partition_offset(), &now);
  if (!s) return Status::error("stale index: " + where + ": " + s.message());
  const fb::Identity* id = fs_->identity();
  if (!id) return Status::error(damaged("no identity"));
  if (now.uuid != str(id->uuid()))
    return Status::error("stale index: " + where + " has UUID " + now.uuid + ", the index was crawled from UUID " +
                         str(id->uuid()) + " (re-formatted?)");
  if (now.block_count != id->block_count() || now.inode_count != id->inode_count())
    return Status::error("stale index: " + where + " was resized since the crawl (" +
                         std::to_string(id->block_count()) + " -> " + std::to_string(now.block_count) + " blocks)");
  if (now.write_time != id->write_time() || now.mount_time != id->mount_time() ||
      now.kbytes_written != id->kbytes_written() || now.free_blocks != id->free_blocks() ||
      now.free_inodes != id->free_inodes() || now.checksum != id->checksum())
    return Status::error("stale index: " + where + " was mounted or written since the crawl (superblock: write time " +
                         std::to_string(id->write_time()) + " -> " + std::to_string(now.write_time) + ", free blocks " +
                         std::to_string(id->free_blocks()) + " -> " + std::to_string(now.free_blocks) + ")");
  return Status::ok();
}

// --- Index --------------------------------------------------------------------

Index::~Index() {
  filesystems_.clear();
  if (map_) ::munmap(map_, size_);
}

std::unique_ptr<Index> Index::open(const std::string& path, Status* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = Status::error(path + ": " + std::strerror(errno));
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = Status::error(path + ": not a regular file");
    ::close(fd);
    return nullptr;
  }
  if (st.st_size < 16 || uint64_t(st.st_size) >= kMaxIndexBytes) {
    *error = Status::error(path + ": not a dsvmi index (size " + std::to_string(st.st_size) + " bytes)");
    ::close(fd);
    return nullptr;
  }
  void* m = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) {
    *error = Status::error(path + ": mmap: " + std::strerror(errno));
    return nullptr;
  }
  // Lookups are random and few: no readahead or fault-around, so only the
  // pages a lookup touches become resident (docs/index.md, lazy loading).
  (void)::madvise(m, size_t(st.st_size), MADV_RANDOM);
  std::unique_ptr<Index> idx(new Index);
  idx->map_ = m;
  idx->data_ = static_cast<const uint8_t*>(m);
  idx->size_ = size_t(st.st_size);
  Status s = idx->init();
  if (!s) {
    *error = Status::error(path + ": " + s.message());
    return nullptr;
  }
  return idx;
}

std::unique_ptr<Index> Index::from_bytes(const void* data, size_t size, Status* error) {
  std::unique_ptr<Index> idx(new Index);
  if (size >= kMaxIndexBytes) {
    *error = Status::error("not a dsvmi index (too large)");
    return nullptr;
  }
  // The copy is 8-byte aligned (vector<uint8_t> from operator new is 16-aligned).
  idx->owned_.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  idx->data_ = idx->owned_.data();
  idx->size_ = size;
  Status s = idx->init();
  if (!s) {
    *error = s;
    return nullptr;
  }
  return idx;
}

std::unique_ptr<Index> Index::view_bytes(const void* data, size_t size, Status* error) {
  if (size >= kMaxIndexBytes || reinterpret_cast<uintptr_t>(data) % 8) {
    *error = Status::error("not a dsvmi index (too large or misaligned buffer)");
    return nullptr;
  }
  std::unique_ptr<Index> idx(new Index);
  idx->data_ = static_cast<const uint8_t*>(data);
  idx->size_ = size;
  Status s = idx->init();
  if (!s) {
    *error = s;
    return nullptr;
  }
  return idx;
}

Status Index::init() {
  if (size_ < 8 || !fb::IndexBufferHasIdentifier(data_))
    return Status::error("not a dsvmi index (no DSVX identifier)");
  // Depth and table limits bound the verifier's work on a hostile file: the
  // schema nests 4 deep and has ~ (2 + kinds + problems) tables per file system.
  flatbuffers::Verifier v(data_, size_, /*max_depth=*/16, /*max_tables=*/1u << 20);
  if (!fb::VerifyIndexBuffer(v)) return Status::error("damaged index (FlatBuffers verification failed)");
  root_ = fb::GetIndex(data_);
  if (root_->format_version() != kIndexFormatVersion)
    return Status::error("index format version " + std::to_string(root_->format_version()) +
                         " is not supported (this dsvmi reads version " + std::to_string(kIndexFormatVersion) + ")");
  if (root_->filesystems()) {
    if (root_->filesystems()->size() > 4096) return Status::error("damaged index: too many file systems");
    for (const auto* fs : *root_->filesystems()) {
      const uint32_t bs = fs->block_size();
      if (bs < 512 || bs > (1u << 21) || (bs & (bs - 1)))
        return Status::error("damaged index: block size " + std::to_string(bs));
      if (fs->block_count() > (uint64_t(1) << 32))
        return Status::error("damaged index: block count " + std::to_string(fs->block_count()));
      if (fs->kinds()) {
        for (const auto* kb : *fs->kinds()) {
          if (kb->kind() >= kKinds || !kb->roaring())
            return Status::error("damaged index: kind bitmap " + std::to_string(kb->kind()));
          Status s = check_roaring_portable(kb->roaring()->Data(), kb->roaring()->size(), fs->block_count());
          if (!s) return Status::error("damaged index: " + s.message());
        }
      }
      filesystems_.push_back(FsIndex(fs));
    }
  }
  return Status::ok();
}

uint32_t Index::format_version() const { return root_->format_version(); }
uint64_t Index::generation() const { return root_->generation(); }
int64_t Index::crawl_time_ns() const { return root_->crawl_time_ns(); }
uint64_t Index::disk_size() const { return root_->disk_size(); }
std::string Index::source() const { return str(root_->source()); }

Status Index::check_against(DiskReader& disk) const {
  if (disk.size() != disk_size())
    return Status::error("stale index: the disk is " + std::to_string(disk.size()) + " bytes, the index was crawled from " +
                         std::to_string(disk_size()) + " bytes");
  for (const auto& fs : filesystems_) {
    Status s = fs.check_against(disk);
    if (!s) return s;
  }
  return Status::ok();
}

}  // namespace dsvmi

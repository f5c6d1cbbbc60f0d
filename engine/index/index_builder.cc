// IndexBuilder: compact temporary records while the crawler streams, one sort
// per file system, one FlatBuffers serialization.
#include "dsvmi/index_builder.h"

#include <fcntl.h>
#include <roaring/roaring.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include "dsvmi/fs_identity.h"
#include "dsvmi/index.h"
#include "index_generated.h"
#include "mode_bits.h"

namespace dsvmi {
namespace {

constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();
constexpr size_t kKinds = size_t(BlockKind::Reserved) + 1;

struct InodeTmp {
  uint64_t ino;
  uint64_t size;
  int64_t mtime_s, ctime_s;
  uint32_t uid, gid, links;
  uint32_t ext_begin, ext_count;  // into FsState::extents (arrival order)
  uint32_t generation;
  uint16_t mode;
};

struct ExtentTmp {
  uint32_t physical, logical, length;  // length with the unwritten bit
};

struct EntryTmp {
  uint32_t parent, child, name_offset;
  uint16_t name_length;
  uint8_t type;
};

struct FsState {
  FilesystemInfo info;
  std::vector<InodeTmp> inodes;
  std::vector<ExtentTmp> extents;
  std::vector<EntryTmp> entries;
  std::string names;
  std::vector<fb::SymlinkRecord> symlinks;
  std::vector<fb::OwnedRunRecord> owned;
  std::vector<CrawlProblem> problems;
  uint64_t problems_dropped = 0;
  roaring_bitmap_t* kinds[kKinds] = {};
  Status error;  // first format-limit error; poisons the file system

  ~FsState() {
    for (auto* b : kinds)
      if (b) roaring_bitmap_free(b);  // 0.2.66 does not accept nullptr
  }
  void fail(std::string what) {
    if (error) error = Status::error(std::move(what));
  }
  void note(uint64_t ino, uint64_t block, std::string what) {
    if (problems.size() < kMaxStoredProblems)
      problems.push_back({ino, block, std::move(what)});
    else
      ++problems_dropped;
  }
  roaring_bitmap_t* kind(BlockKind k) {
    auto& b = kinds[size_t(k)];
    if (!b) b = roaring_bitmap_create();
    return b;
  }
  // Clips [first, first+count) to the file system and marks it as `k`.
  bool add_blocks(BlockKind k, uint64_t first, uint64_t count, uint64_t ino) {
    if (count == 0) return false;
    const uint64_t limit = info.block_count;
    if (first >= limit || count > limit - first) {
      note(ino, first, "blocks " + std::to_string(first) + "+" + std::to_string(count) +
                           " lie outside the file system (" + std::to_string(limit) +
                           " blocks); ignored");
      return false;
    }
    roaring_bitmap_add_range_closed(kind(k), uint32_t(first), uint32_t(first + count - 1));
    return true;
  }
  uint32_t add_name(std::string_view s) {
    if (names.size() + s.size() > kU32Max) {
      fail("index format limit: name pool above 4 GiB");
      return 0;
    }
    uint32_t off = uint32_t(names.size());
    names.append(s);
    return off;
  }
};

}  // namespace

struct IndexBuilder::State {
  IndexSource source;
  DiskReader* disk = nullptr;
  flatbuffers::FlatBufferBuilder fbb{1 << 20};
  std::vector<flatbuffers::Offset<fb::Filesystem>> filesystems;
  std::unique_ptr<FsState> fs;
  Status error;

  void finish_fs();
};

IndexBuilder::IndexBuilder(const IndexSource& source, DiskReader* disk)
    : state_(std::make_unique<State>()) {
  state_->source = source;
  state_->disk = disk;
}

IndexBuilder::~IndexBuilder() = default;

void IndexBuilder::begin_filesystem(const FilesystemInfo& fs) {
  if (state_->fs) end_filesystem();
  state_->fs = std::make_unique<FsState>();
  state_->fs->info = fs;
  if (fs.block_count > kU32Max + 1)
    state_->fs->fail("index format limit: file system has " + std::to_string(fs.block_count) +
                     " blocks; 32-bit block numbers (CRoaring 0.2) allow 2^32");
}

void IndexBuilder::inode(const Inode& in) {
  FsState* f = state_->fs.get();
  if (!f || !f->error) return;
  if (in.ino == 0 || in.ino > kU32Max) {
    f->fail("index format limit: inode number " + std::to_string(in.ino) + " is not in 1..2^32-1");
    return;
  }
  InodeTmp t{};
  t.ino = in.ino;
  t.mode = uint16_t(mode_type_bits(in.type) | (in.mode & 07777));
  t.links = in.links;
  t.generation = in.generation;
  t.uid = in.uid;
  t.gid = in.gid;
  t.size = (in.type == FileType::CharDevice || in.type == FileType::BlockDevice) ? in.rdev : in.size;
  // Floor division: times before 1970 stay ordered.
  auto secs = [](int64_t ns) { return ns >= 0 ? ns / 1000000000 : -((-ns + 999999999) / 1000000000); };
  t.mtime_s = secs(in.mtime_ns);
  t.ctime_s = secs(in.ctime_ns);
  t.ext_begin = uint32_t(std::min<size_t>(f->extents.size(), kU32Max));
  const BlockKind kind = in.type == FileType::Directory ? BlockKind::Directory
                         : (f->info.journal_ino && in.ino == f->info.journal_ino) ? BlockKind::Journal
                                                                                  : BlockKind::FileData;
  for (const Extent& e : in.extents) {
    if (e.length == 0 || e.length >= (1u << 31)) {
      f->note(in.ino, e.physical, "extent of " + std::to_string(e.length) + " blocks ignored");
      continue;
    }
    if (e.logical > kU32Max) {
      f->note(in.ino, e.physical, "extent at logical block above 2^32 ignored");
      continue;
    }
    if (!f->add_blocks(kind, e.physical, e.length, in.ino)) continue;
    if (f->extents.size() >= kU32Max) {
      f->fail("index format limit: more than 2^32 extents");
      return;
    }
    f->extents.push_back({uint32_t(e.physical), uint32_t(e.logical),
                          e.length | (e.unwritten ? 0x80000000u : 0u)});
  }
  t.ext_count = uint32_t(f->extents.size() - t.ext_begin);
  f->inodes.push_back(t);
  if (in.type == FileType::Symlink) {
    const size_t len = std::min<size_t>(in.symlink_target.size(), kU32Max);
    uint32_t off = f->add_name(std::string_view(in.symlink_target).substr(0, len));
    f->symlinks.emplace_back(uint32_t(in.ino), off, uint32_t(len));
  }
}

void IndexBuilder::dir_entry(uint64_t dir_ino, const DirEntry& e) {
  FsState* f = state_->fs.get();
  if (!f || !f->error) return;
  if (dir_ino == 0 || dir_ino > kU32Max || e.ino == 0 || e.ino > kU32Max) {
    f->note(dir_ino, 0, "directory entry with inode number out of range ignored");
    return;
  }
  if (e.name.empty() || e.name.size() > 0xFFFF) {
    f->note(dir_ino, 0, "directory entry with a name of " + std::to_string(e.name.size()) +
                            " bytes ignored");
    return;
  }
  if (f->entries.size() >= kU32Max) {
    f->fail("index format limit: more than 2^32 directory entries");
    return;
  }
  uint32_t off = f->add_name(e.name);
  f->entries.push_back({uint32_t(dir_ino), uint32_t(e.ino), off, uint16_t(e.name.size()),
                        uint8_t(e.type)});
}

void IndexBuilder::blocks(BlockKind kind, uint64_t first, uint64_t count, uint64_t owner_ino,
                          uint64_t logical) {
  FsState* f = state_->fs.get();
  if (!f || !f->error) return;
  if (kind == BlockKind::Free || kind == BlockKind::FileData || size_t(kind) >= kKinds) return;
  if (!f->add_blocks(kind, first, count, owner_ino)) return;
  if (owner_ino != 0) {
    if (owner_ino > kU32Max) {
      f->note(owner_ino, first, "owner inode number out of range ignored");
      return;
    }
    f->owned.emplace_back(uint32_t(first), uint32_t(count), uint32_t(owner_ino));
  }
}

void IndexBuilder::problem(const CrawlProblem& p) {
  if (state_->fs) state_->fs->note(p.ino, p.block, p.what);
}

void IndexBuilder::end_filesystem() {
  if (!state_->fs) return;
  state_->finish_fs();
  state_->fs.reset();
}

void IndexBuilder::State::finish_fs() {
  FsState& f = *fs;
  if (!f.error) {
    if (error) error = Status::error(f.info.type + " file system at offset " +
                                     std::to_string(f.info.partition_offset) + ": " +
                                     f.error.message());
    return;
  }
  auto& b = fbb;

  // Inodes: sorted by ino, first report of a duplicate wins.
  std::stable_sort(f.inodes.begin(), f.inodes.end(),
                   [](const InodeTmp& a, const InodeTmp& c) { return a.ino < c.ino; });
  f.inodes.erase(std::unique(f.inodes.begin(), f.inodes.end(),
                             [](const InodeTmp& a, const InodeTmp& c) { return a.ino == c.ino; }),
                 f.inodes.end());
  int64_t time_base = std::numeric_limits<int64_t>::max();
  uint64_t files = 0, dirs = 0;
  for (const auto& t : f.inodes) {
    time_base = std::min({time_base, t.mtime_s, t.ctime_s});
    const uint16_t type = t.mode & kModeTypeMask;
    files += type == kModeRegular;
    dirs += type == kModeDirectory;
  }
  if (f.inodes.empty()) time_base = 0;
  auto rel = [&](int64_t s) { return uint32_t(std::min<uint64_t>(uint64_t(s - time_base), kU32Max)); };

  std::vector<fb::InodeRecord> inodes;
  std::vector<uint32_t> generations;
  std::vector<fb::ExtentRecord> extents;
  inodes.reserve(f.inodes.size());
  generations.reserve(f.inodes.size());
  extents.reserve(f.extents.size());
  std::vector<fb::OwnerRecord> owners;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> owner_index;
  for (const auto& t : f.inodes) {
    auto [it, added] = owner_index.try_emplace({t.uid, t.gid}, uint32_t(owners.size()));
    if (added) owners.emplace_back(t.uid, t.gid);
    auto first = f.extents.begin() + t.ext_begin;
    std::sort(first, first + t.ext_count,
              [](const ExtentTmp& a, const ExtentTmp& c) { return a.logical < c.logical; });
    inodes.emplace_back(uint32_t(t.ino), t.mode, uint16_t(std::min<uint32_t>(t.links, 0xFFFF)), it->second,
                        uint32_t(t.size), uint32_t(t.size >> 32), rel(t.mtime_s),
                        rel(t.ctime_s), uint32_t(extents.size()));
    generations.push_back(t.generation);
    for (uint32_t i = 0; i < t.ext_count; ++i) {
      const ExtentTmp& e = first[i];
      extents.emplace_back(e.physical, e.logical, e.length);
    }
  }
  std::vector<InodeTmp>().swap(f.inodes);
  std::vector<ExtentTmp>().swap(f.extents);
  std::vector<uint32_t> by_physical(extents.size());
  std::iota(by_physical.begin(), by_physical.end(), 0u);
  std::sort(by_physical.begin(), by_physical.end(), [&](uint32_t a, uint32_t c) {
    return extents[a].physical() < extents[c].physical();
  });

  // Directory entries: sorted by (parent, name); duplicates dropped.
  const std::string& names = f.names;
  auto name_of = [&](const EntryTmp& e) { return std::string_view(names).substr(e.name_offset, e.name_length); };
  std::sort(f.entries.begin(), f.entries.end(), [&](const EntryTmp& a, const EntryTmp& c) {
    if (a.parent != c.parent) return a.parent < c.parent;
    return name_of(a) < name_of(c);
  });
  f.entries.erase(std::unique(f.entries.begin(), f.entries.end(),
                              [&](const EntryTmp& a, const EntryTmp& c) {
                                return a.parent == c.parent && name_of(a) == name_of(c);
                              }),
                  f.entries.end());
  std::vector<fb::DirEntryRecord> entries;
  std::vector<fb::DirectoryRecord> directories;
  entries.reserve(f.entries.size());
  for (size_t i = 0; i < f.entries.size(); ++i) {
    const EntryTmp& e = f.entries[i];
    if (i == 0 || f.entries[i - 1].parent != e.parent) directories.emplace_back(e.parent, uint32_t(i));
    entries.emplace_back(e.child, e.name_offset, e.name_length, e.type, 0);
  }
  std::vector<uint32_t> by_child(entries.size());
  std::iota(by_child.begin(), by_child.end(), 0u);
  std::stable_sort(by_child.begin(), by_child.end(),
                   [&](uint32_t a, uint32_t c) { return entries[a].child() < entries[c].child(); });
  std::vector<EntryTmp>().swap(f.entries);

  std::sort(f.symlinks.begin(), f.symlinks.end(),
            [](const fb::SymlinkRecord& a, const fb::SymlinkRecord& c) { return a.ino() < c.ino(); });
  std::sort(f.owned.begin(), f.owned.end(), [](const fb::OwnedRunRecord& a, const fb::OwnedRunRecord& c) {
    return a.first() < c.first();
  });

  // Kind bitmaps, and the metadata block count (every kind but data/free/reserved).
  std::vector<flatbuffers::Offset<fb::KindBitmap>> kinds;
  roaring_bitmap_t* meta = roaring_bitmap_create();
  for (size_t k = 0; k < kKinds; ++k) {
    roaring_bitmap_t* bm = f.kinds[k];
    if (!bm || roaring_bitmap_is_empty(bm)) continue;
    const auto kind = BlockKind(k);
    if (kind != BlockKind::FileData && kind != BlockKind::Reserved) roaring_bitmap_or_inplace(meta, bm);
    if (kind == BlockKind::FileData) continue;  // the extents say it
    roaring_bitmap_run_optimize(bm);
    const size_t n = roaring_bitmap_portable_size_in_bytes(bm);
    uint8_t* p = nullptr;
    auto vec = b.CreateUninitializedVector(n, &p);
    roaring_bitmap_portable_serialize(bm, reinterpret_cast<char*>(p));
    kinds.push_back(fb::CreateKindBitmap(b, uint8_t(k), vec));
  }
  const uint64_t metadata_blocks = roaring_bitmap_get_cardinality(meta);
  roaring_bitmap_free(meta);

  std::vector<flatbuffers::Offset<fb::Problem>> problems;
  for (const auto& p : f.problems)
    problems.push_back(fb::CreateProblem(b, p.ino, p.block, b.CreateString(p.what)));

  FsIdentity id;
  id.uuid = f.info.uuid;
  id.block_count = f.info.block_count;
  id.inode_count = f.info.inode_count;
  if (disk) {
    FsIdentity on_disk;
    if (read_fs_identity(*disk, f.info.type, f.info.partition_offset, &on_disk)) id = on_disk;
  }
  auto identity = fb::CreateIdentity(b, b.CreateString(id.uuid), id.block_count, id.inode_count,
                                     id.write_time, id.mount_time, id.kbytes_written, id.free_blocks,
                                     id.free_inodes, id.checksum);

  auto v_inodes = b.CreateVectorOfStructs(inodes);
  auto v_generations = b.CreateVector(generations);
  auto v_owners = b.CreateVectorOfStructs(owners);
  auto v_extents = b.CreateVectorOfStructs(extents);
  auto v_by_phys = b.CreateVector(by_physical);
  auto v_dirs = b.CreateVectorOfStructs(directories);
  auto v_entries = b.CreateVectorOfStructs(entries);
  auto v_by_child = b.CreateVector(by_child);
  auto v_names = b.CreateVector(reinterpret_cast<const uint8_t*>(names.data()), names.size());
  auto v_symlinks = b.CreateVectorOfStructs(f.symlinks);
  auto v_owned = b.CreateVectorOfStructs(f.owned);
  auto v_kinds = b.CreateVector(kinds);
  auto v_problems = b.CreateVector(problems);
  auto type = b.CreateString(f.info.type);
  auto uuid = b.CreateString(f.info.uuid);
  auto label = b.CreateString(f.info.label);

  fb::FilesystemBuilder fsb(b);
  fsb.add_type(type);
  fsb.add_uuid(uuid);
  fsb.add_label(label);
  fsb.add_partition_offset(f.info.partition_offset);
  fsb.add_partition_size(f.info.partition_size);
  fsb.add_block_size(f.info.block_size);
  fsb.add_block_count(f.info.block_count);
  fsb.add_inode_count(f.info.inode_count);
  fsb.add_root_ino(f.info.root_ino);
  fsb.add_inode_size(f.info.inode_size);
  fsb.add_journal_ino(f.info.journal_ino);
  fsb.add_identity(identity);
  fsb.add_time_base(time_base);
  fsb.add_files(files);
  fsb.add_directories(dirs);
  fsb.add_metadata_blocks(metadata_blocks);
  fsb.add_inodes(v_inodes);
  fsb.add_inode_generations(v_generations);
  fsb.add_owners(v_owners);
  fsb.add_extents(v_extents);
  fsb.add_extents_by_physical(v_by_phys);
  fsb.add_directory_index(v_dirs);
  fsb.add_entries(v_entries);
  fsb.add_entries_by_child(v_by_child);
  fsb.add_names(v_names);
  fsb.add_symlinks(v_symlinks);
  fsb.add_owned_runs(v_owned);
  fsb.add_kinds(v_kinds);
  fsb.add_problems(v_problems);
  fsb.add_problems_dropped(f.problems_dropped);
  filesystems.push_back(fsb.Finish());
}

Status IndexBuilder::finish(std::vector<uint8_t>* out) {
  if (state_->fs) end_filesystem();
  if (!state_->error) return state_->error;
  auto& b = state_->fbb;
  std::random_device rd;
  const uint64_t generation = (uint64_t(rd()) << 32) ^ rd();
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto source = b.CreateString(state_->source.description);
  auto fss = b.CreateVector(state_->filesystems);
  auto root = fb::CreateIndex(b, kIndexFormatVersion, generation, now, state_->source.disk_size,
                              source, fss);
  fb::FinishIndexBuffer(b, root);
  // FlatBuffers caps a buffer at 2 GiB; the builder would have asserted first
  // for far larger inputs, so this is the documented limit rather than a check.
  out->assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  return Status::ok();
}

Status IndexBuilder::write(const std::string& path, size_t* bytes_written) {
  std::vector<uint8_t> buf;
  Status s = finish(&buf);
  if (!s) return s;
  if (!(s = write_index_file(path, buf))) return s;
  if (bytes_written) *bytes_written = buf.size();
  return Status::ok();
}

Status write_index_file(const std::string& path, const std::vector<uint8_t>& buf) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error(tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string err = tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::error(err);
    }
    done += size_t(n);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return Status::error(err);
  }
  return Status::ok();
}

}  // namespace dsvmi

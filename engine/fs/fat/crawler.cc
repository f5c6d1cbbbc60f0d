// The FAT crawl: boot sector, FSInfo, the FAT (active copy decoded, others
// compared), then the directory tree breadth-first, many directories per
// batched read. Every cluster is claimed by at most one chain (ChainWalker),
// so a directory linked twice, a loop back to an ancestor or a cross-linked
// file is found and cut the moment it appears, and the work is bounded by
// the volume's cluster count. See docs/fat.md.
#include "crawler.h"

#include <algorithm>

#include "attributes.h"
#include "fat_time.h"
#include "identity.h"
#include "names.h"

namespace dsvmi::fat {
namespace {

constexpr uint64_t kMaxFileBytes = uint64_t(1) << 32;  // sizes are 32-bit
constexpr uint32_t kMaxExtentSectors = 1u << 30;        // the index keeps extents below 2^31 blocks

}  // namespace

void Crawler::problem(uint64_t ino, uint64_t sector, std::string what) {
  ++stats_.problems;
  if (stats_.problems < options_.max_problems) {
    sink_.problem({ino, sector, std::move(what)});
  } else if (stats_.problems == options_.max_problems) {
    sink_.problem({0, 0, "fat: more than " + std::to_string(options_.max_problems) +
                             " problems; no more are reported"});
  }
}

Status Crawler::read_sectors(uint64_t sector, uint64_t count, unsigned char* out) {
  const uint64_t bytes = count * g_.bytes_per_sector;
  if (sector * g_.bytes_per_sector > size_ || bytes > size_ - sector * g_.bytes_per_sector)
    return Status::error("fat: sectors " + std::to_string(sector) + "+" + std::to_string(count) +
                         " lie past the end of the partition");
  stats_.bytes_read += bytes;
  return disk_.read(offset_ + sector * g_.bytes_per_sector,
                    std::span<std::byte>(reinterpret_cast<std::byte*>(out), bytes));
}

Status Crawler::read_geometry() {
  if (size_ < 512) return Status::error("fat: partition smaller than one sector");
  std::vector<unsigned char> boot(512);
  stats_.bytes_read += 512;
  Status s = disk_.read(offset_, std::span<std::byte>(reinterpret_cast<std::byte*>(boot.data()), 512));
  if (!s) return s;
  if (boot[510] != 0x55 || boot[511] != 0xAA) return Status::error("fat: boot sector has no 0x55AA signature");
  if (!(s = decode_bpb(boot.data(), boot.size(), size_, &g_, &warnings_))) return s;
  if (g_.fat_bits == 32 && g_.fsinfo_sector != 0) {
    std::vector<unsigned char> info(g_.bytes_per_sector);
    if (read_sectors(g_.fsinfo_sector, 1, info.data()))
      decode_fsinfo(info.data(), info.size(), &g_, &warnings_);
    else
      warnings_.push_back("fat: cannot read the FSInfo sector " + std::to_string(g_.fsinfo_sector));
  }
  stats_.fat_bits = g_.fat_bits;
  stats_.clusters = g_.cluster_count;
  return Status::ok();
}

Status Crawler::load_fat() {
  const uint64_t used = FatTable::used_bytes(g_);
  std::vector<unsigned char> raw(used);
  auto read_copy = [&](uint32_t copy) -> Status {
    const uint64_t base = offset_ + (uint64_t(g_.reserved_sectors) + uint64_t(copy) * g_.fat_sectors) *
                                        g_.bytes_per_sector;
    std::vector<ReadRequest> reqs;
    const uint64_t chunk = std::max<uint64_t>(options_.batch_bytes, 4096);
    for (uint64_t at = 0; at < used; at += chunk) {
      const uint64_t n = std::min(chunk, used - at);
      reqs.push_back({base + at, std::span<std::byte>(reinterpret_cast<std::byte*>(raw.data() + at), n)});
    }
    stats_.bytes_read += used;
    return disk_.read_batch(reqs);
  };
  Status s = read_copy(g_.active_fat);
  if (!s) return Status::error("fat: cannot read FAT copy " + std::to_string(g_.active_fat + 1) + ": " + s.message());
  fat_.decode(g_, raw.data(), raw.size());
  stats_.free_clusters = fat_.free_clusters();
  if (!g_.mirrored) return Status::ok();  // the other copies are stale by design
  for (uint32_t copy = 0; copy < g_.num_fats; ++copy) {
    if (copy == g_.active_fat) continue;
    if (!(s = read_copy(copy))) {
      warnings_.push_back("fat: cannot read FAT copy " + std::to_string(copy + 1) + ": " + s.message());
      continue;
    }
    uint32_t first = 0;
    if (uint64_t differ = fat_.compare(raw.data(), raw.size(), &first)) {
      warnings_.push_back("fat: FAT copy " + std::to_string(copy + 1) + " differs from copy " +
                          std::to_string(g_.active_fat + 1) + " in " + std::to_string(differ) +
                          " entries (first: cluster " + std::to_string(first) + "); copy " +
                          std::to_string(g_.active_fat + 1) + " is used, as Linux does");
    }
  }
  return Status::ok();
}

void Crawler::extents_of(const Chain& chain, std::vector<Extent>* out) const {
  out->clear();
  const uint32_t spc = g_.sectors_per_cluster;
  for (const ClusterRun& r : chain.runs) {
    uint64_t physical = g_.cluster_sector(r.first), logical = r.logical * spc;
    uint64_t left = uint64_t(r.count) * spc;
    while (left > 0) {
      const uint32_t n = uint32_t(std::min<uint64_t>(left, kMaxExtentSectors));
      out->push_back({logical, physical, n, false});
      logical += n;
      physical += n;
      left -= n;
    }
  }
}

uint64_t Crawler::entry_disk_byte(const PendingDir& dir, size_t offset) const {
  if (dir.chain.runs.empty()) return g_.root_dir_sector * g_.bytes_per_sector + offset;
  const uint64_t k = offset / g_.cluster_size;
  auto it = std::upper_bound(dir.chain.runs.begin(), dir.chain.runs.end(), k,
                             [](uint64_t v, const ClusterRun& r) { return v < r.logical; });
  const ClusterRun& r = *(it - 1);  // runs start at logical 0, so it != begin
  return g_.cluster_sector(r.first + uint32_t(k - r.logical)) * g_.bytes_per_sector + offset % g_.cluster_size;
}

Status Crawler::read_directory(const PendingDir& dir, std::vector<unsigned char>* out) {
  if (dir.chain.runs.empty()) {
    out->resize(uint64_t(g_.root_dir_sectors) * g_.bytes_per_sector);
    return read_sectors(g_.root_dir_sector, g_.root_dir_sectors, out->data());
  }
  out->resize(dir.chain.clusters * g_.cluster_size);
  std::vector<ReadRequest> reqs;
  for (const ClusterRun& r : dir.chain.runs) {
    reqs.push_back({offset_ + g_.cluster_sector(r.first) * g_.bytes_per_sector,
                    std::span<std::byte>(reinterpret_cast<std::byte*>(out->data() + r.logical * g_.cluster_size),
                                         uint64_t(r.count) * g_.cluster_size)});
  }
  stats_.bytes_read += out->size();
  return disk_.read_batch(reqs);
}

void Crawler::add_entry(PendingDir& parent, const ParsedEntry& e, uint64_t entry_byte, uint32_t* subdirs) {
  std::string name = e.name;
  if (sanitize_name(&name))
    problem(parent.ino, entry_byte / g_.bytes_per_sector,
            "name of the entry at byte " + std::to_string(entry_byte) + " holds '/' or NUL; shown with U+FFFD");
  const bool is_dir = (e.attr & kAttrDirectory) != 0;
  const uint64_t sector = entry_byte / g_.bytes_per_sector;
  Inode in;
  in.type = is_dir ? FileType::Directory : FileType::Regular;
  in.mode = mode_of(e.attr);
  in.flags = e.attr;
  in.links = 1;
  in.mtime_ns = fat_time_ns(e.write_date, e.write_time);
  in.ctime_ns = in.mtime_ns;
  in.atime_ns = fat_time_ns(e.access_date, 0);
  in.crtime_ns = fat_time_ns(e.create_date, e.create_time, e.create_centiseconds);
  in.generation = generation_of(e.create_date, e.create_time);
  Chain chain;
  if (is_dir) {
    if (e.first_cluster == 0) {
      problem(parent.ino, sector, "directory '" + name + "' names no cluster; skipped");
      return;
    }
    walker_->walk(e.first_cluster, std::max<uint64_t>(1, kMaxDirectoryBytes / g_.cluster_size), e.first_cluster,
                  &chain);
    if (chain.clusters == 0) {
      problem(parent.ino, sector, "directory '" + name + "': " + ChainWalker::describe(chain) + "; skipped");
      return;
    }
    if (chain.end != Chain::End::Complete)
      problem(e.first_cluster, sector, "directory '" + name + "': " + ChainWalker::describe(chain) +
                                           (chain.end == Chain::End::Limit ? " (more than 65536 entries)" : ""));
    in.ino = e.first_cluster;
    in.size = chain.clusters * g_.cluster_size;
    extents_of(chain, &in.extents);
    ++*subdirs;
    sink_.dir_entry(parent.ino, {in.ino, FileType::Directory, name});
    ++stats_.dir_entries;
    queue_.push_back({in.ino, std::move(chain), std::move(in)});
    return;
  }
  in.size = e.size;
  bool own_clusters = false;
  if (e.first_cluster != 0) {
    walker_->walk(e.first_cluster, (kMaxFileBytes + g_.cluster_size - 1) / g_.cluster_size, e.first_cluster, &chain);
    own_clusters = chain.clusters > 0;
    if (!own_clusters)
      problem(0, sector, "file '" + name + "': " + ChainWalker::describe(chain) + "; it gets no data");
  }
  if (own_clusters) {
    in.ino = e.first_cluster;
  } else if (!location_id(entry_byte, &in.ino)) {
    in.ino = next_overflow_id_ > kOverflowIdBase ? next_overflow_id_-- : kOverflowIdBase;
  }
  if (own_clusters) {
    extents_of(chain, &in.extents);
    const uint64_t needed = (uint64_t(e.size) + g_.cluster_size - 1) / g_.cluster_size;
    if (chain.end != Chain::End::Complete)
      problem(in.ino, sector, "file '" + name + "': " + ChainWalker::describe(chain));
    else if (chain.clusters < needed)
      problem(in.ino, sector, "file '" + name + "' of " + std::to_string(e.size) + " bytes has a chain of only " +
                                  std::to_string(chain.clusters) + " clusters");
  } else if (e.size > 0 && e.first_cluster == 0) {
    problem(in.ino, sector, "file '" + name + "' of " + std::to_string(e.size) + " bytes has no clusters");
  }
  ++stats_.files;
  sink_.inode(in);
  sink_.dir_entry(parent.ino, {in.ino, FileType::Regular, name});
  ++stats_.dir_entries;
}

void Crawler::process_directory(PendingDir& dir, const std::vector<unsigned char>& bytes) {
  uint32_t subdirs = 0;
  DirectoryCallbacks cb;
  cb.entry = [&](const ParsedEntry& e) { add_entry(dir, e, entry_disk_byte(dir, e.offset), &subdirs); };
  cb.problem = [&](size_t off, const std::string& what) {
    problem(dir.ino, entry_disk_byte(dir, off) / g_.bytes_per_sector, "fat: directory " + std::to_string(dir.ino) + ": " + what);
  };
  DirectoryCounts counts;
  parse_directory(bytes.data(), bytes.size(), g_.fat_bits == 32, cb, &counts);
  stats_.deleted_entries += counts.deleted;
  stats_.orphan_lfn_slots += counts.orphan_slots;
  dir.inode.links = 2 + subdirs;
  ++stats_.directories;
  sink_.inode(dir.inode);
}

void Crawler::crawl_directories() {
  std::vector<unsigned char> bytes;
  while (!queue_.empty()) {
    PendingDir dir = std::move(queue_.front());
    queue_.pop_front();
    Status s = read_directory(dir, &bytes);
    if (!s) {
      problem(dir.ino, 0, "fat: cannot read directory " + std::to_string(dir.ino) + ": " + s.message());
      bytes.clear();
    }
    process_directory(dir, bytes);
  }
}

Status Crawler::run() {
  if (offset_ > disk_.size()) return Status::error("fat: partition starts past the end of the disk");
  size_ = std::min(size_, disk_.size() - offset_);
  Status s = read_geometry();
  if (!s) return s;
  if (!(s = load_fat())) return s;
  walker_ = std::make_unique<ChainWalker>(g_, fat_);

  PendingDir root;
  root.ino = kRootId;
  if (g_.fat_bits == 32) {
    walker_->walk(g_.root_cluster, std::max<uint64_t>(1, kMaxDirectoryBytes / g_.cluster_size), kRootId, &root.chain);
    if (root.chain.end != Chain::End::Complete)
      warnings_.push_back("fat: root directory: " + ChainWalker::describe(root.chain));
  }
  std::vector<unsigned char> root_bytes;
  if (!(s = read_directory(root, &root_bytes))) return Status::error("fat: cannot read the root directory: " + s.message());
  DirectoryCallbacks label_only;
  label_only.label = [&](const std::string& l) {
    if (!label_found_) root_label_ = l;
    label_found_ = true;
  };
  DirectoryCounts ignored;
  parse_directory(root_bytes.data(), root_bytes.size(), g_.fat_bits == 32, label_only, &ignored);

  FilesystemInfo info;
  info.type = "vfat";
  info.uuid = serial_text(g_.serial);
  info.label = label_found_ ? root_label_ : (g_.label == "NO NAME" ? "" : g_.label);
  info.partition_offset = offset_;
  info.partition_size = size_;
  info.block_size = g_.bytes_per_sector;
  info.block_count = std::min<uint64_t>(g_.total_sectors, size_ / g_.bytes_per_sector);
  info.root_ino = kRootId;
  sink_.begin_filesystem(info);
  for (std::string& w : warnings_) problem(0, 0, std::move(w));
  warnings_.clear();
  sink_.blocks(BlockKind::Superblock, 0, g_.reserved_sectors, 0, 0);
  sink_.blocks(BlockKind::MapNode, g_.reserved_sectors, uint64_t(g_.num_fats) * g_.fat_sectors, 0, 0);

  root.inode.ino = kRootId;
  root.inode.type = FileType::Directory;
  root.inode.mode = 0755;
  root.inode.flags = kAttrDirectory;
  if (root.chain.runs.empty()) {
    root.inode.size = root_bytes.size();
    root.inode.extents.push_back({0, g_.root_dir_sector, g_.root_dir_sectors, false});
  } else {
    root.inode.size = root.chain.clusters * g_.cluster_size;
    extents_of(root.chain, &root.inode.extents);
  }
  process_directory(root, root_bytes);
  crawl_directories();
  sink_.end_filesystem();
  return Status::ok();
}

}  // namespace dsvmi::fat

namespace dsvmi {

Status crawl_fat(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink, const FatCrawlOptions& options,
                 FatCrawlStats* stats) {
  FatCrawlStats local;
  FatCrawlStats& st = stats ? *stats : local;
  st = {};
  fat::Crawler crawler(disk, offset, size, sink, options, st);
  return crawler.run();
}

}  // namespace dsvmi

// The crawl: superblock -> group descriptors -> group metadata runs -> inode
// bitmaps and inode tables (batched) -> each in-use inode's block map ->
// directory blocks (batched). See docs/ext4.md for the damage policy.
#include "crawler.h"

#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "crc32c.h"
#include "ext4_format.h"

namespace dsvmi::ext4 {
namespace {

FileType type_of_mode(uint32_t mode) {
  switch (mode & 0xF000) {
    case 0x1000: return FileType::Fifo;
    case 0x2000: return FileType::CharDevice;
    case 0x4000: return FileType::Directory;
    case 0x6000: return FileType::BlockDevice;
    case 0x8000: return FileType::Regular;
    case 0xA000: return FileType::Symlink;
    case 0xC000: return FileType::Socket;
    default: return FileType::Unknown;
  }
}

uint32_t crc_le32(uint32_t crc, uint32_t v) {
  unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                        static_cast<unsigned char>(v >> 16), static_cast<unsigned char>(v >> 24)};
  return crc32c_update(crc, b, 4);
}

const unsigned char kZero[4] = {0, 0, 0, 0};

}  // namespace

void RunEmitter::add(BlockKind kind, uint64_t first, uint64_t count, uint64_t owner) {
  if (count == 0) return;
  if (open_ && kind == kind_ && owner == owner_ && first_ + count_ == first) {
    count_ += count;
    return;
  }
  flush();
  open_ = true;
  kind_ = kind;
  first_ = first;
  count_ = count;
  owner_ = owner;
}

void RunEmitter::flush() {
  if (!open_) return;
  sink_.blocks(kind_, first_, count_, owner_, 0);
  stats_.metadata_blocks += count_;
  open_ = false;
}

void Crawler::problem(uint64_t ino, uint64_t block, std::string what) {
  stats_.problems++;
  if (stats_.problems <= options_.max_problems) {
    sink_.problem(CrawlProblem{ino, block, "ext4: " + std::move(what)});
  } else if (stats_.problems == options_.max_problems + 1) {
    sink_.problem(CrawlProblem{0, 0, "ext4: more than " + std::to_string(options_.max_problems) +
                                         " problems; not reporting any more"});
  }
}

Status Crawler::read_blocks(uint64_t block, uint64_t count, unsigned char* out) {
  const uint64_t bs = sb_.block_size;
  if (block > size_ / bs || count > size_ / bs - block) {
    return Status::error("block " + std::to_string(block) + " lies beyond the end of the partition (truncated?)");
  }
  stats_.bytes_read += count * bs;
  return disk_.read(offset_ + block * bs, std::span<std::byte>(reinterpret_cast<std::byte*>(out), count * bs));
}

Status Crawler::read_superblock() {
  if (offset_ > disk_.size()) return Status::error("ext4: partition starts past the end of the disk");
  size_ = std::min(size_, disk_.size() - offset_);
  if (size_ < 2048) return Status::error("ext4: partition of " + std::to_string(size_) + " bytes holds no superblock");
  unsigned char raw[1024];
  Status s = disk_.read(offset_ + 1024, std::span<std::byte>(reinterpret_cast<std::byte*>(raw), sizeof raw));
  if (!s) return Status::error("ext4: cannot read the superblock: " + s.message());
  bool checksum_ok = true;
  s = decode_superblock(raw, size_, &sb_, &checksum_ok);
  if (!s) return s;
  FilesystemInfo info;
  info.type = sb_.flavor;
  info.uuid = sb_.uuid_text;
  info.label = sb_.label;
  info.partition_offset = offset_;
  info.partition_size = size_;
  info.block_size = sb_.block_size;
  info.block_count = sb_.blocks_count;
  info.inode_count = sb_.inodes_count;
  info.root_ino = kRootIno;
  info.inode_size = sb_.inode_size;
  info.journal_ino = (sb_.compat & kCompatHasJournal) ? sb_.journal_inum : 0;
  sink_.begin_filesystem(info);
  if (!checksum_ok) problem(0, sb_.first_data_block, "superblock checksum mismatch");
  if (sb_.incompat & ~kIncompatKnown) {
    problem(0, 0, "unknown incompatible features 0x" + std::to_string(sb_.incompat & ~kIncompatKnown) +
                      "; the crawl may be incomplete");
  }
  if (sb_.incompat & kIncompatRecover) problem(0, 0, "the journal needs recovery; metadata may be stale");
  if (sb_.ro_compat & kRoCompatBigalloc) problem(0, 0, "bigalloc: cluster allocation is not modelled");
  if (sb_.blocks_count > size_ / sb_.block_size) {
    problem(0, 0, "the file system claims " + std::to_string(sb_.blocks_count) + " blocks but the partition holds " +
                      std::to_string(size_ / sb_.block_size) + " (truncated?)");
  }
  return Status::ok();
}

Status Crawler::read_group_descriptors() {
  const uint32_t bs = sb_.block_size;
  const uint64_t per_block = bs / sb_.desc_size;
  const uint64_t desc_blocks = (sb_.group_count + per_block - 1) / per_block;
  const bool meta_bg = (sb_.incompat & kIncompatMetaBg) != 0;
  std::vector<unsigned char> raw(desc_blocks * bs);
  std::vector<bool> readable(desc_blocks, true);
  for (uint64_t i = 0; i < desc_blocks; i++) {
    uint64_t block;
    if (!meta_bg || i < sb_.first_meta_bg) {
      block = sb_.first_data_block + 1 + i;
    } else {
      uint64_t g = i * per_block;
      block = sb_.group_first_block(g) + (sb_.has_super(g) ? 1 : 0);
    }
    Status s = block_in_fs(block) ? read_blocks(block, 1, raw.data() + i * bs)
                                  : Status::error("block " + std::to_string(block) + " is outside the file system");
    if (!s) {
      readable[i] = false;
      problem(0, block, "group descriptor block " + std::to_string(i) + " unreadable: " + s.message());
    }
  }
  groups_.assign(sb_.group_count, GroupDesc{});
  const uint64_t itable_blocks = sb_.inode_table_blocks();
  uint64_t invalid = 0;
  for (uint64_t g = 0; g < sb_.group_count; g++) {
    if (!readable[g / per_block]) continue;
    const unsigned char* d = raw.data() + g * sb_.desc_size;
    GroupDesc& gd = groups_[g];
    gd.block_bitmap = le32(d + 0x00);
    gd.inode_bitmap = le32(d + 0x04);
    gd.inode_table = le32(d + 0x08);
    gd.flags = le16(d + 0x12);
    gd.itable_unused = le16(d + 0x1C);
    if (sb_.desc_size >= 64) {
      gd.block_bitmap |= uint64_t{le32(d + 0x20)} << 32;
      gd.inode_bitmap |= uint64_t{le32(d + 0x24)} << 32;
      gd.inode_table |= uint64_t{le32(d + 0x28)} << 32;
      gd.itable_unused |= uint32_t{le16(d + 0x32)} << 16;
    }
    if (sb_.metadata_csum()) {
      uint32_t c = crc_le32(sb_.csum_seed, static_cast<uint32_t>(g));
      c = crc32c_update(c, d, 0x1E);
      c = crc32c_update(c, kZero, 2);
      c = crc32c_update(c, d + 0x20, sb_.desc_size - 0x20);
      if ((c & 0xFFFF) != le16(d + 0x1E)) problem(0, 0, "group " + std::to_string(g) + " descriptor checksum mismatch");
    }
    gd.valid = block_in_fs(gd.block_bitmap) && block_in_fs(gd.inode_bitmap) &&
               block_in_fs(gd.inode_table, itable_blocks);
    if (!gd.valid) {
      invalid++;
      problem(0, 0, "group " + std::to_string(g) + " descriptor points outside the file system (block bitmap " +
                        std::to_string(gd.block_bitmap) + ", inode bitmap " + std::to_string(gd.inode_bitmap) +
                        ", inode table " + std::to_string(gd.inode_table) + "); its inodes are skipped");
    }
    if (gd.itable_unused > sb_.inodes_per_group) {
      problem(0, 0, "group " + std::to_string(g) + " claims " + std::to_string(gd.itable_unused) +
                        " unused inodes, more than a group holds");
      gd.itable_unused = 0;
    }
  }
  if (invalid == sb_.group_count) return Status::error("ext4: group descriptors: no group descriptor is valid");
  return Status::ok();
}

void Crawler::report_group_metadata() {
  const uint64_t per_block = sb_.block_size / sb_.desc_size;
  const bool meta_bg = (sb_.incompat & kIncompatMetaBg) != 0;
  const uint64_t classic = sb_.classic_gdt_blocks();
  if (sb_.block_size == 1024) runs_.add(BlockKind::Reserved, 0, 1, 0);  // boot block before the superblock
  for (uint64_t g = 0; g < sb_.group_count; g++) {
    uint64_t first = sb_.group_first_block(g);
    if (sb_.has_super(g)) {
      runs_.add(BlockKind::Superblock, first, 1, 0);
      runs_.add(BlockKind::GroupDescriptors, first + 1, classic + sb_.reserved_gdt_blocks, 0);
    }
    if (meta_bg) {
      uint64_t index = g % per_block;
      if (g / per_block >= sb_.first_meta_bg && (index == 0 || index == 1 || index == per_block - 1)) {
        runs_.add(BlockKind::GroupDescriptors, first + (sb_.has_super(g) ? 1 : 0), 1, 0);
      }
    }
  }
  for (const GroupDesc& gd : groups_) if (gd.valid) runs_.add(BlockKind::BlockBitmap, gd.block_bitmap, 1, 0);
  for (const GroupDesc& gd : groups_) if (gd.valid) runs_.add(BlockKind::InodeBitmap, gd.inode_bitmap, 1, 0);
  const uint64_t itable_blocks = sb_.inode_table_blocks();
  for (const GroupDesc& gd : groups_) if (gd.valid) runs_.add(BlockKind::InodeTable, gd.inode_table, itable_blocks, 0);
  runs_.flush();
}

// Finds system.data (inline data beyond i_block) among the in-inode xattrs.
void Crawler::read_inline_data(const unsigned char* raw, uint64_t ino, std::string* out, bool* found) {
  *found = false;
  const uint32_t isz = sb_.inode_size;
  if (isz <= 128) return;
  uint32_t start = 128 + le16(raw + 0x80);
  if (start + 4 > isz || le32(raw + start) != 0xEA020000u) return;
  const uint32_t base = start + 4;
  uint32_t pos = base;
  while (pos + 16 <= isz && le32(raw + pos) != 0) {
    uint32_t name_len = raw[pos], index = raw[pos + 1];
    uint32_t value_offs = le16(raw + pos + 2), value_size = le32(raw + pos + 8);
    if (pos + 16 + name_len > isz) break;
    if (index == 7 && name_len == 4 && std::memcmp(raw + pos + 16, "data", 4) == 0) {
      if (uint64_t{base} + value_offs + value_size > isz) {
        problem(ino, 0, "inline data: system.data value lies outside the inode");
        return;
      }
      out->append(reinterpret_cast<const char*>(raw + base + value_offs), value_size);
      *found = true;
      return;
    }
    pos += (16 + name_len + 3) & ~3u;
  }
}

void Crawler::process_inode(uint64_t ino, const unsigned char* raw) {
  const uint32_t mode = le16(raw);
  const uint32_t links = le16(raw + 0x1A);
  const uint32_t dtime = le32(raw + 0x14);
  if (mode == 0) {
    if (ino >= sb_.first_ino) problem(ino, 0, "inode is marked in use but has mode 0; skipped");
    return;
  }
  // links == 0 with dtime set is a deleted inode, unless dtime is an inode
  // number: then it is a link in the orphan list (open but unlinked), which
  // still owns its blocks.
  if (links == 0 && dtime > sb_.inodes_count) {
    problem(ino, 0, "inode is marked in use but was deleted (links 0, dtime set); skipped");
    return;
  }
  const uint32_t isz = sb_.inode_size;
  uint32_t extra = isz > 128 ? le16(raw + 0x80) : 0;
  if (extra % 4 != 0 || 128 + extra > isz) {
    problem(ino, 0, "inode extra size " + std::to_string(extra) + " is invalid");
    extra = 0;
  }
  auto fits = [&](uint32_t off) { return isz > 128 && 128 + extra >= off + 4; };
  const uint32_t generation = le32(raw + 0x64);
  uint32_t inode_seed = 0;
  if (sb_.metadata_csum()) {
    inode_seed = crc_le32(crc_le32(sb_.csum_seed, static_cast<uint32_t>(ino)), generation);
    bool hi = isz > 128 && 128 + extra >= 0x84;
    uint32_t c = crc32c_update(inode_seed, raw, 0x7C);
    c = crc32c_update(c, kZero, 2);
    if (isz == 128) {
      c = crc32c_update(c, raw + 0x7E, 2);
    } else if (hi) {
      c = crc32c_update(c, raw + 0x7E, 0x82 - 0x7E);
      c = crc32c_update(c, kZero, 2);
      c = crc32c_update(c, raw + 0x84, isz - 0x84);
    } else {
      c = crc32c_update(c, raw + 0x7E, isz - 0x7E);
    }
    bool ok = hi ? c == (le16(raw + 0x7C) | uint32_t{le16(raw + 0x82)} << 16) : (c & 0xFFFF) == le16(raw + 0x7C);
    if (!ok) problem(ino, 0, "inode checksum mismatch");
  }

  Inode& n = inode_;
  n.ino = ino;
  n.type = type_of_mode(mode);
  n.mode = mode & 07777;
  n.uid = le16(raw + 0x02) | uint32_t{le16(raw + 0x78)} << 16;
  n.gid = le16(raw + 0x18) | uint32_t{le16(raw + 0x7A)} << 16;
  n.size = le32(raw + 0x04) | uint64_t{le32(raw + 0x6C)} << 32;
  n.links = links;
  auto time_ns = [&](uint32_t sec_off, uint32_t extra_off) -> int64_t {
    int64_t sec = static_cast<int32_t>(le32(raw + sec_off));
    uint32_t x = fits(extra_off) ? le32(raw + extra_off) : 0;
    sec += static_cast<int64_t>(x & 3) << 32;
    // ext4 times reach year 2446; int64 nanoseconds end in 2262. Saturate.
    int64_t ns;
    if (__builtin_mul_overflow(sec, int64_t{1000000000}, &ns) || __builtin_add_overflow(ns, int64_t{x >> 2}, &ns)) {
      return sec < 0 ? INT64_MIN : INT64_MAX;
    }
    return ns;
  };
  n.atime_ns = time_ns(0x08, 0x8C);
  n.ctime_ns = time_ns(0x0C, 0x84);
  n.mtime_ns = time_ns(0x10, 0x88);
  n.crtime_ns = fits(0x90) ? time_ns(0x90, 0x94) : 0;
  n.flags = le32(raw + 0x20);
  n.generation = generation;
  n.rdev = 0;
  n.symlink_target.clear();
  n.extents.clear();
  const unsigned char* i_block = raw + 0x28;

  if (n.type == FileType::Unknown) problem(ino, 0, "inode has unknown file type in mode " + std::to_string(mode));
  if (n.type == FileType::CharDevice || n.type == FileType::BlockDevice) {
    uint32_t b0 = le32(i_block), b1 = le32(i_block + 4);
    unsigned major = b0 ? (b0 >> 8) & 0xFF : (b1 & 0xFFF00) >> 8;
    unsigned minor = b0 ? b0 & 0xFF : (b1 & 0xFF) | ((b1 >> 12) & 0xFFF00);
    n.rdev = makedev(major, minor);
  }
  bool mapped = n.type == FileType::Regular || n.type == FileType::Directory || n.type == FileType::Symlink;
  std::string inline_bytes;
  bool is_inline = mapped && (n.flags & kInlineDataFl) != 0;
  if (ino == kResizeIno && (sb_.compat & kCompatResizeInode)) {
    // The resize inode's blocks are the reserved GDT blocks, already reported
    // as GroupDescriptors; only its doubly-indirect block is its own.
    uint32_t dind = le32(i_block + 13 * 4);
    if (block_in_fs(dind)) runs_.add(BlockKind::MapNode, dind, 1, ino);
  } else if (is_inline) {
    inline_bytes.assign(reinterpret_cast<const char*>(i_block), 60);
    bool found = false;
    read_inline_data(raw, ino, &inline_bytes, &found);
    if (n.type == FileType::Symlink) n.symlink_target = inline_bytes.substr(0, std::min<uint64_t>(n.size, inline_bytes.size()));
  } else if (n.type == FileType::Symlink && n.size > 0 && n.size < 60) {
    n.symlink_target.assign(reinterpret_cast<const char*>(i_block), n.size);
  } else if (mapped) {
    if (n.flags & kExtentsFl) {
      map_extent_tree(ino, i_block, inode_seed, &n.extents);
    } else {
      map_indirect(ino, i_block, &n.extents);
    }
    if (n.type == FileType::Symlink) {
      if (n.size > sb_.block_size) {
        problem(ino, 0, "symlink target of " + std::to_string(n.size) + " bytes exceeds one block");
      } else if (n.extents.empty() || n.extents[0].logical != 0) {
        problem(ino, 0, "slow symlink has no block 0");
      } else {
        std::vector<unsigned char>& buf = level_buffers_[0];
        buf.resize(sb_.block_size);
        Status s = read_blocks(n.extents[0].physical, 1, buf.data());
        if (s) {
          n.symlink_target.assign(reinterpret_cast<const char*>(buf.data()), n.size);
        } else {
          problem(ino, n.extents[0].physical, "symlink: " + s.message());
        }
      }
    }
  }
  uint64_t file_acl = le32(raw + 0x68) | uint64_t{le16(raw + 0x76)} << 32;
  if (file_acl != 0) {
    if (!block_in_fs(file_acl)) {
      problem(ino, file_acl, "xattr block " + std::to_string(file_acl) + " lies outside the file system");
    } else if (xattr_blocks_seen_.insert(file_acl).second) {
      runs_.add(BlockKind::Xattr, file_acl, 1, ino);
    }
  }
  sink_.inode(n);
  stats_.inodes++;
  if (n.type == FileType::Directory) {
    stats_.directories++;
    if (is_inline) {
      // Inline directory: 4-byte parent inode, entries in the rest of
      // i_block, then more entries in system.data.
      parse_dir_entries(ino, reinterpret_cast<const unsigned char*>(inline_bytes.data()) + 4, 56, 0, false);
      if (inline_bytes.size() > 60) {
        parse_dir_entries(ino, reinterpret_cast<const unsigned char*>(inline_bytes.data()) + 60,
                          inline_bytes.size() - 60, 0, false);
      }
    } else {
      queue_directory(ino, n.size, n.extents, inode_seed);
    }
  }
}

void Crawler::crawl_inodes() {
  const uint32_t bs = sb_.block_size, isz = sb_.inode_size, ipg = sb_.inodes_per_group;
  const uint64_t inode_groups =
      std::min<uint64_t>(sb_.group_count, (uint64_t{sb_.inodes_count} + ipg - 1) / ipg);
  const uint64_t batch_blocks = std::max<uint64_t>(1, options_.batch_bytes / bs);
  const uint64_t inodes_per_block = bs / isz;
  std::vector<unsigned char> bitmaps;
  std::vector<unsigned char> tables;
  std::vector<uint32_t> scan_count;  // per group of the chunk: inodes worth decoding

  struct Piece {
    uint64_t group;
    uint64_t first_block;  // within the group's inode table
    uint64_t blocks;
    size_t buffer_offset;
  };
  std::vector<Piece> pieces;

  for (uint64_t g0 = 0; g0 < inode_groups; g0 += batch_blocks) {
    const uint64_t gn = std::min(batch_blocks, inode_groups - g0);
    bitmaps.assign(gn * bs, 0);
    scan_count.assign(gn, 0);
    requests_.clear();
    std::vector<uint64_t> wanted;
    for (uint64_t k = 0; k < gn; k++) {
      const GroupDesc& gd = groups_[g0 + k];
      if (!gd.valid) continue;
      if (sb_.group_csum() && (gd.flags & kBgInodeUninit)) continue;  // no inode in use
      wanted.push_back(k);
    }
    // Bitmap reads: batched; on failure, one by one to find the bad ones.
    for (uint64_t k : wanted) {
      uint64_t b = groups_[g0 + k].inode_bitmap;
      if (b < size_ / bs) {
        requests_.push_back(ReadRequest{offset_ + b * bs,
                                        std::span<std::byte>(reinterpret_cast<std::byte*>(bitmaps.data() + k * bs), bs)});
      }
    }
    bool batch_ok = static_cast<bool>(disk_.read_batch(requests_));
    stats_.bytes_read += requests_.size() * uint64_t{bs};
    for (uint64_t k : wanted) {
      const uint64_t g = g0 + k;
      const GroupDesc& gd = groups_[g];
      unsigned char* bm = bitmaps.data() + k * bs;
      if (!batch_ok || gd.inode_bitmap >= size_ / bs) {
        Status s = read_blocks(gd.inode_bitmap, 1, bm);
        if (!s) {
          problem(0, gd.inode_bitmap, "group " + std::to_string(g) + " inode bitmap unreadable: " + s.message());
          continue;
        }
      }
      if (sb_.metadata_csum()) {
        (void)0;  // bitmap checksums live in the descriptor; checked below when present
      }
      uint64_t limit = ipg;
      if (sb_.group_csum()) limit = ipg - gd.itable_unused;
      uint64_t first_ino = g * uint64_t{ipg} + 1;
      if (first_ino + limit - 1 > sb_.inodes_count) limit = sb_.inodes_count - first_ino + 1;
      uint64_t highest = 0;
      for (uint64_t i = 0; i < limit; i++) {
        if (bm[i >> 3] & (1u << (i & 7))) highest = i + 1;
      }
      scan_count[k] = static_cast<uint32_t>(highest);
    }
    // Inode table pieces, each at most batch_blocks long.
    pieces.clear();
    for (uint64_t k = 0; k < gn; k++) {
      if (scan_count[k] == 0) continue;
      uint64_t blocks = (scan_count[k] + inodes_per_block - 1) / inodes_per_block;
      for (uint64_t b = 0; b < blocks; b += batch_blocks) {
        pieces.push_back(Piece{g0 + k, b, std::min(batch_blocks, blocks - b), 0});
      }
    }
    size_t p0 = 0;
    while (p0 < pieces.size()) {
      size_t p1 = p0;
      uint64_t total = 0;
      while (p1 < pieces.size() && (p1 == p0 || total + pieces[p1].blocks <= batch_blocks)) {
        pieces[p1].buffer_offset = total * bs;
        total += pieces[p1].blocks;
        p1++;
      }
      tables.resize(total * bs);
      requests_.clear();
      bool all_inside = true;
      for (size_t p = p0; p < p1; p++) {
        uint64_t b = groups_[pieces[p].group].inode_table + pieces[p].first_block;
        if (b + pieces[p].blocks > size_ / bs) all_inside = false;
        requests_.push_back(ReadRequest{
            offset_ + b * bs,
            std::span<std::byte>(reinterpret_cast<std::byte*>(tables.data() + pieces[p].buffer_offset),
                                 pieces[p].blocks * bs)});
      }
      bool ok = all_inside && static_cast<bool>(disk_.read_batch(requests_));
      if (ok) stats_.bytes_read += total * bs;
      for (size_t p = p0; p < p1; p++) {
        const Piece& pc = pieces[p];
        uint64_t b = groups_[pc.group].inode_table + pc.first_block;
        if (!ok) {
          Status s = read_blocks(b, pc.blocks, tables.data() + pc.buffer_offset);
          if (!s) {
            problem(0, b, "group " + std::to_string(pc.group) + " inode table unreadable: " + s.message());
            continue;
          }
        }
        const unsigned char* bm = bitmaps.data() + (pc.group - g0) * bs;
        uint64_t i0 = pc.first_block * inodes_per_block;
        uint64_t i1 = std::min<uint64_t>(scan_count[pc.group - g0], i0 + pc.blocks * inodes_per_block);
        for (uint64_t i = i0; i < i1; i++) {
          if (!(bm[i >> 3] & (1u << (i & 7)))) continue;
          process_inode(pc.group * uint64_t{ipg} + i + 1, tables.data() + pc.buffer_offset + (i - i0) * isz);
        }
      }
      p0 = p1;
    }
  }
}

Status Crawler::open() {
  Status s = read_superblock();
  if (!s) return s;
  return read_group_descriptors();
}

void Crawler::reset_budgets() {
  map_nodes_read_ = 0;
  dir_blocks_queued_ = 0;
  map_budget_exhausted_ = false;
  dir_budget_exhausted_ = false;
  xattr_blocks_seen_.clear();
}

Status Crawler::run() {
  Status s = read_superblock();
  if (!s) return s;
  s = read_group_descriptors();
  if (!s) {
    // begin_filesystem was called: close it so the sink sees a whole crawl.
    problem(0, 0, s.message());
    sink_.end_filesystem();
    return s;
  }
  report_group_metadata();
  crawl_inodes();
  flush_directories();
  runs_.flush();
  sink_.end_filesystem();
  return Status::ok();
}

}  // namespace dsvmi::ext4

namespace dsvmi {

Status crawl_ext4(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink, const Ext4CrawlOptions& options,
                  Ext4CrawlStats* stats) {
  Ext4CrawlStats local;
  Ext4CrawlStats& st = stats ? *stats : local;
  st = Ext4CrawlStats{};
  ext4::Crawler crawler(disk, offset, size, sink, options, st);
  return crawler.run();
}

}  // namespace dsvmi

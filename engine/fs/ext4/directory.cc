// Directories: every block of a directory is parsed as a chain of entries.
// This covers linear and htree directories alike: an htree's dx_root starts
// with "." and a ".." whose rec_len spans the rest of the block, and every
// dx_node is one empty entry spanning its block, so their index data is never
// mistaken for entries (the format was designed for exactly this). Leaf
// blocks are the ordinary blocks; metadata_csum leaves end in a tail entry
// with inode 0. Blocks are read in large batches across directories.
#include <algorithm>

#include "crawler.h"
#include "crc32c.h"
#include "ext4_format.h"

namespace dsvmi::ext4 {
namespace {

FileType dirent_type(uint8_t t) {
  switch (t) {
    case 1: return FileType::Regular;
    case 2: return FileType::Directory;
    case 3: return FileType::CharDevice;
    case 4: return FileType::BlockDevice;
    case 5: return FileType::Fifo;
    case 6: return FileType::Socket;
    case 7: return FileType::Symlink;
    default: return FileType::Unknown;
  }
}

}  // namespace

void Crawler::parse_dir_entries(uint64_t dir_ino, const unsigned char* p, size_t length, uint64_t block,
                                bool /*has_csum_tail*/) {
  const bool filetype = (sb_.incompat & kIncompatFiletype) != 0;
  const bool big_blocks = sb_.block_size >= 65536;
  size_t pos = 0;
  DirEntry entry;
  while (pos + 8 <= length) {
    const unsigned char* e = p + pos;
    uint32_t ino = le32(e);
    uint32_t rec_len = le16(e + 4);
    if (big_blocks) {
      // 64 KiB blocks: rec_len 65535 or 0 means "the whole block"; otherwise
      // the two low bits carry bits 16-17.
      rec_len = (rec_len == 65535 || rec_len == 0) ? sb_.block_size : ((rec_len & 65532) | ((rec_len & 3) << 16));
    }
    uint32_t name_len = e[6];
    if (!filetype) name_len |= uint32_t{e[7]} << 8;
    if (rec_len < 8 || rec_len % 4 != 0 || rec_len > length - pos) {
      problem(dir_ino, block, "directory: bad rec_len " + std::to_string(rec_len) + " at offset " +
                                  std::to_string(pos) + " of block " + std::to_string(block));
      return;
    }
    if (8 + name_len > rec_len) {
      problem(dir_ino, block, "directory: name length " + std::to_string(name_len) + " exceeds rec_len " +
                                  std::to_string(rec_len) + " at offset " + std::to_string(pos));
      return;
    }
    if (ino != 0) {
      const char* name = reinterpret_cast<const char*>(e + 8);
      bool dot = (name_len == 1 && name[0] == '.') || (name_len == 2 && name[0] == '.' && name[1] == '.');
      if (!dot) {
        if (ino > sb_.inodes_count) {
          problem(dir_ino, block, "directory: entry '" + std::string(name, name_len) + "' points to inode " +
                                      std::to_string(ino) + " beyond the inode count");
        } else if (ino == dir_ino) {
          problem(dir_ino, block, "directory: contains itself as '" + std::string(name, name_len) + "' (cycle)");
        } else {
          entry.ino = ino;
          entry.type = filetype ? dirent_type(e[7]) : FileType::Unknown;
          entry.name.assign(name, name_len);
          sink_.dir_entry(dir_ino, entry);
          stats_.dir_entries++;
        }
      }
    }
    pos += rec_len;
  }
}

void Crawler::queue_directory(uint64_t ino, uint64_t size, const std::vector<Extent>& extents, uint32_t csum_seed) {
  const uint64_t blocks_in_size = (size + sb_.block_size - 1) / sb_.block_size;
  const uint64_t batch_blocks = std::max<uint64_t>(1, options_.batch_bytes / sb_.block_size);
  for (const Extent& x : extents) {
    if (x.unwritten || x.logical >= blocks_in_size) continue;
    uint64_t n = std::min<uint64_t>(x.length, blocks_in_size - x.logical);
    for (uint64_t k = 0; k < n; k++) {
      if (dir_blocks_queued_ >= sb_.blocks_count) {
        if (!dir_budget_exhausted_) {
          problem(ino, x.physical + k, "directory: more directory blocks than the file system has blocks; "
                                       "not reading any more");
        }
        dir_budget_exhausted_ = true;
        return;
      }
      dir_blocks_queued_++;
      pending_dirs_.push_back(PendingDirBlock{ino, x.physical + k, csum_seed});
      if (pending_dirs_.size() >= batch_blocks) flush_directories();
    }
  }
}

void Crawler::flush_directories() {
  if (pending_dirs_.empty()) return;
  const uint32_t bs = sb_.block_size;
  dir_buffer_.resize(pending_dirs_.size() * size_t{bs});
  // One request per run of physically adjacent blocks.
  requests_.clear();
  for (size_t i = 0; i < pending_dirs_.size(); i++) {
    auto* dest = reinterpret_cast<std::byte*>(dir_buffer_.data() + i * bs);
    uint64_t at = offset_ + pending_dirs_[i].physical * bs;
    if (!requests_.empty() && requests_.back().offset + requests_.back().out.size() == at &&
        requests_.back().out.data() + requests_.back().out.size() == dest) {
      requests_.back().out = std::span<std::byte>(requests_.back().out.data(), requests_.back().out.size() + bs);
    } else {
      requests_.push_back(ReadRequest{at, std::span<std::byte>(dest, bs)});
    }
  }
  std::vector<bool> readable(pending_dirs_.size(), true);
  Status s = disk_.read_batch(requests_);
  if (s) {
    stats_.bytes_read += dir_buffer_.size();
  } else {
    // Find which blocks failed (e.g. beyond a truncated disk); parse the rest.
    for (size_t i = 0; i < pending_dirs_.size(); i++) {
      Status one = read_blocks(pending_dirs_[i].physical, 1, dir_buffer_.data() + i * bs);
      if (!one) {
        readable[i] = false;
        problem(pending_dirs_[i].dir_ino, pending_dirs_[i].physical, "directory: " + one.message());
      }
    }
  }
  for (size_t i = 0; i < pending_dirs_.size(); i++) {
    if (!readable[i]) continue;
    const PendingDirBlock& d = pending_dirs_[i];
    const unsigned char* b = dir_buffer_.data() + i * bs;
    bool tail = le32(b + bs - 12) == 0 && le16(b + bs - 8) == 12 && b[bs - 6] == 0 && b[bs - 5] == 0xDE;
    if (tail && sb_.metadata_csum() && crc32c_update(d.inode_csum_seed, b, bs - 12) != le32(b + bs - 4)) {
      problem(d.dir_ino, d.physical, "directory: block " + std::to_string(d.physical) + " checksum mismatch");
    }
    parse_dir_entries(d.dir_ino, b, bs, d.physical, tail);
  }
  pending_dirs_.clear();
}

}  // namespace dsvmi::ext4

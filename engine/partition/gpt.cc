// GPT: a header at LBA 1 and its backup at the disk's last LBA, each with a
// CRC32 over the header and one over its partition entry array. The primary
// is used when both of its CRCs hold; otherwise the backup (with its own
// entry array); when neither holds the disk is reported, not guessed at.
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "little_endian.h"
#include "partition_internal.h"

namespace dsvmi::partition_detail {
namespace {

struct GptHeader {
  uint64_t my_lba = 0, alternate_lba = 0, first_usable = 0, last_usable = 0, entries_lba = 0;
  uint32_t entry_count = 0, entry_size = 0, entries_crc = 0;
  std::string disk_guid;
  std::vector<std::byte> entries;
};

uint32_t crc32_of(const std::byte* p, size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    uInt piece = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
    c = crc32(c, reinterpret_cast<const Bytef*>(p), piece);
    p += piece;
    n -= piece;
  }
  return static_cast<uint32_t>(c);
}

std::string guid_text(const std::byte* g) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(g), le16(g + 4),
                le16(g + 6), u8(g + 8), u8(g + 9), u8(g + 10), u8(g + 11), u8(g + 12), u8(g + 13),
                u8(g + 14), u8(g + 15));
  return buf;
}

bool all_zero(const std::byte* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != std::byte{0}) return false;
  }
  return true;
}

// UTF-16LE (BMP and surrogate pairs) to UTF-8, stopping at the first NUL.
std::string utf16le_name(const std::byte* p, size_t units) {
  std::string out;
  for (size_t i = 0; i < units; i++) {
    uint32_t c = le16(p + 2 * i);
    if (c == 0) break;
    if (c >= 0xD800 && c < 0xDC00 && i + 1 < units) {
      uint32_t lo = le16(p + 2 * (i + 1));
      if (lo >= 0xDC00 && lo < 0xE000) {
        c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
        i++;
      } else {
        c = 0xFFFD;
      }
    } else if (c >= 0xD800 && c < 0xE000) {
      c = 0xFFFD;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// Reads and checks the header at `lba` and its entry array. Returns an empty
// string on success, else what is wrong with it.
std::string load_header(DiskReader& disk, uint32_t ss, uint64_t lba, GptHeader* h) {
  uint64_t sectors = disk.size() / ss;
  if (lba >= sectors) return "header LBA " + std::to_string(lba) + " is past the end of the disk";
  std::vector<std::byte> s(ss);
  if (!disk.read(lba * ss, s)) return "cannot read LBA " + std::to_string(lba);
  if (std::memcmp(s.data(), "EFI PART", 8) != 0) return "no \"EFI PART\" signature at LBA " + std::to_string(lba);
  uint32_t header_size = le32(&s[12]);
  if (header_size < 92 || header_size > ss) return "header size " + std::to_string(header_size) + " is invalid";
  uint32_t stored_crc = le32(&s[16]);
  std::memset(&s[16], 0, 4);
  if (crc32_of(s.data(), header_size) != stored_crc) return "header CRC mismatch";
  h->my_lba = le64(&s[24]);
  h->alternate_lba = le64(&s[32]);
  h->first_usable = le64(&s[40]);
  h->last_usable = le64(&s[48]);
  h->disk_guid = guid_text(&s[56]);
  h->entries_lba = le64(&s[72]);
  h->entry_count = le32(&s[80]);
  h->entry_size = le32(&s[84]);
  h->entries_crc = le32(&s[88]);
  if (h->my_lba != lba) return "header says it is at LBA " + std::to_string(h->my_lba) + ", read at " + std::to_string(lba);
  if (h->entry_size < 128 || h->entry_size % 8 != 0 || h->entry_size > 4096) {
    return "entry size " + std::to_string(h->entry_size) + " is invalid";
  }
  uint64_t array_bytes = uint64_t{h->entry_count} * h->entry_size;
  if (array_bytes > kMaxGptEntryArrayBytes) {
    return "entry array of " + std::to_string(array_bytes) + " bytes exceeds the limit";
  }
  if (h->entries_lba >= sectors || array_bytes > (sectors - h->entries_lba) * ss) {
    return "entry array at LBA " + std::to_string(h->entries_lba) + " is past the end of the disk";
  }
  if (h->first_usable > h->last_usable + 1 || h->last_usable >= sectors) {
    return "usable LBA range " + std::to_string(h->first_usable) + "-" + std::to_string(h->last_usable) + " is invalid";
  }
  h->entries.assign(array_bytes, std::byte{0});
  if (!disk.read(h->entries_lba * ss, h->entries)) return "cannot read the entry array";
  if (crc32_of(h->entries.data(), h->entries.size()) != h->entries_crc) return "entry array CRC mismatch";
  return "";
}

}  // namespace

Status read_gpt(DiskReader& disk, PartitionTable* t) {
  // 512-byte sectors unless the header is only found at 4096.
  uint32_t ss = 512;
  std::vector<std::byte> probe(8);
  if (disk.size() >= 8192 && disk.read(512, probe) && std::memcmp(probe.data(), "EFI PART", 8) != 0 &&
      disk.read(4096, probe) && std::memcmp(probe.data(), "EFI PART", 8) == 0) {
    ss = 4096;
  }
  t->sector_size = ss;
  uint64_t sectors = disk.size() / ss;
  if (sectors < 3) return Status::error("gpt: disk too small for a GPT");
  GptHeader primary, backup;
  std::string primary_err = load_header(disk, ss, 1, &primary);
  uint64_t backup_lba = sectors - 1;
  std::string backup_err = load_header(disk, ss, backup_lba, &backup);
  if (!backup_err.empty() && primary_err.empty() && primary.alternate_lba != backup_lba &&
      primary.alternate_lba > 1 && primary.alternate_lba < sectors) {
    // A disk that grew after partitioning: the backup sits where the primary says.
    backup_lba = primary.alternate_lba;
    backup_err = load_header(disk, ss, backup_lba, &backup);
  }
  const GptHeader* h = &primary;
  if (!primary_err.empty()) {
    if (!backup_err.empty()) {
      return Status::error("gpt: primary header invalid (" + primary_err + ") and backup header invalid (" +
                           backup_err + ")");
    }
    t->warnings.push_back("gpt: primary header invalid (" + primary_err + "); using the backup header at LBA " +
                          std::to_string(backup_lba));
    h = &backup;
  } else if (!backup_err.empty()) {
    t->warnings.push_back("gpt: backup header invalid (" + backup_err + ")");
  }
  t->disk_guid = h->disk_guid;
  for (uint32_t i = 0; i < h->entry_count; i++) {
    const std::byte* e = h->entries.data() + size_t{i} * h->entry_size;
    if (all_zero(e, 16)) continue;
    uint64_t first = le64(e + 32), last = le64(e + 40);
    if (first > last || last >= sectors) {
      t->warnings.push_back("gpt: entry " + std::to_string(i + 1) + " has an invalid LBA range " +
                            std::to_string(first) + "-" + std::to_string(last) + "; skipped");
      continue;
    }
    if (first < h->first_usable || last > h->last_usable) {
      t->warnings.push_back("gpt: entry " + std::to_string(i + 1) + " lies outside the usable LBA range");
    }
    Partition p;
    p.number = i + 1;
    p.offset = first * ss;
    p.size = (last - first + 1) * ss;
    p.type_guid = guid_text(e);
    p.unique_guid = guid_text(e + 16);
    p.name = utf16le_name(e + 56, 36);
    t->partitions.push_back(std::move(p));
  }
  return Status::ok();
}

}  // namespace dsvmi::partition_detail

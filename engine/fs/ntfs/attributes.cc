// Attribute value decoders (docs/ntfs.md, "Attributes").
#include "attributes.h"

#include <cstring>

#include "le.h"
#include "names.h"

namespace dsvmi::ntfs {
namespace {

// Reparse target names: '\' is Windows' separator; "\??\" marks an NT path.
std::string windows_path(std::string s) {
  if (s.rfind("\\??\\", 0) == 0) s = s.substr(4);
  for (char& c : s)
    if (c == '\\') c = '/';
  return s;
}

}  // namespace

bool decode_standard_information(const unsigned char* v, size_t n, StandardInformation* out) {
  if (n < 36) return false;
  out->created = le64(v);
  out->modified = le64(v + 8);
  out->mft_changed = le64(v + 16);
  out->accessed = le64(v + 24);
  out->dos_attributes = le32(v + 32);
  return true;
}

bool decode_file_name(const unsigned char* v, size_t n, FileName* out) {
  if (n < 66) return false;
  const size_t units = v[64];
  if (66 + 2 * units > n || units == 0) return false;
  out->parent_ref = le64(v);
  out->dos_attributes = le32(v + 56);
  const uint8_t ns = v[65];
  if (ns > 3) return false;
  out->name_space = Namespace(ns);
  out->name = utf16_to_utf8(v + 66, units);
  return true;
}

Status decode_reparse_point(const unsigned char* v, size_t n, ReparsePoint* out) {
  if (n < 8) return Status::error("reparse point shorter than its header");
  out->tag = le32(v);
  const size_t data_length = le16(v + 4);
  if (8 + data_length > n) return Status::error("reparse data of " + std::to_string(data_length) + " bytes is cut off");
  const unsigned char* d = v + 8;
  if (out->tag == kReparseLxSymlink) {
    if (data_length < 4) return Status::error("WSL symlink without a version field");
    out->is_link = true;
    out->target.assign(reinterpret_cast<const char*>(d + 4), data_length - 4);
    return Status::ok();
  }
  if (out->tag != kReparseSymlink && out->tag != kReparseMountPoint) return Status::ok();
  const size_t header = out->tag == kReparseSymlink ? 12 : 8;
  if (data_length < header) return Status::error("symlink reparse data shorter than its header");
  const size_t subst_off = le16(d), subst_len = le16(d + 2), print_off = le16(d + 4), print_len = le16(d + 6);
  const size_t buffer = data_length - header;
  // The print name is what Windows shows; the substitute name when it is empty.
  size_t off = print_off, len = print_len;
  if (len == 0) off = subst_off, len = subst_len;
  if (off > buffer || len > buffer - off || len % 2 != 0)
    return Status::error("symlink reparse name lies outside its buffer");
  out->is_link = true;
  out->target = windows_path(utf16_to_utf8(d + header + off, len / 2));
  return Status::ok();
}

InterixKind decode_interix(const unsigned char* v, size_t n, std::string* target, uint64_t* rdev) {
  if (n < 8) return InterixKind::None;
  if (std::memcmp(v, "IntxLNK\1", 8) == 0) {
    *target = utf16_to_utf8(v + 8, (n - 8) / 2);
    return InterixKind::Symlink;
  }
  const bool chr = std::memcmp(v, "IntxCHR\0", 8) == 0, blk = std::memcmp(v, "IntxBLK\0", 8) == 0;
  if ((chr || blk) && n >= 24) {
    const uint64_t major = le64(v + 8), minor = le64(v + 16);
    // Linux's dev_t encoding (makedev), as stat(2) shows it.
    *rdev = ((major & 0xFFFFF000) << 32) | ((major & 0xFFF) << 8) | ((minor & 0xFFFFFF00) << 12) | (minor & 0xFF);
    return chr ? InterixKind::CharDevice : InterixKind::BlockDevice;
  }
  return InterixKind::None;
}

Status decode_attribute_list(const unsigned char* v, size_t n, size_t max_entries,
                             std::vector<AttributeListEntry>* out) {
  size_t at = 0;
  while (at + 26 <= n) {
    const unsigned char* e = v + at;
    const size_t length = le16(e + 4);
    if (length < 26 || length % 8 != 0 || length > n - at)
      return Status::error("attribute list entry at byte " + std::to_string(at) + " has length " +
                           std::to_string(length));
    if (out->size() >= max_entries)
      return Status::error("attribute list has more than " + std::to_string(max_entries) + " entries");
    AttributeListEntry a;
    a.type = le32(e);
    const size_t name_length = e[6], name_offset = e[7];
    a.start_vcn = le64(e + 8);
    a.record_ref = le64(e + 16);
    a.id = le16(e + 24);
    if (name_length > 0) {
      if (name_offset + 2 * name_length > length)
        return Status::error("attribute list entry at byte " + std::to_string(at) + " has its name outside it");
      a.name = utf16_to_utf8(e + name_offset, name_length);
    }
    out->push_back(std::move(a));
    at += length;
  }
  return Status::ok();
}

}  // namespace dsvmi::ntfs

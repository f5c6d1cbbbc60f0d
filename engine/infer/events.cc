#include <cinttypes>
#include <cstdio>

#include "dsvmi/events.h"

namespace dsvmi {
namespace {

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64(const std::vector<uint8_t>& in, std::string* out) {
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8 | in[i + 2];
    out->push_back(kB64[v >> 18]);
    out->push_back(kB64[(v >> 12) & 63]);
    out->push_back(kB64[(v >> 6) & 63]);
    out->push_back(kB64[v & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint32_t{in[i]} << 16 | (i + 1 < in.size() ? uint32_t{in[i + 1]} << 8 : 0);
    out->push_back(kB64[v >> 18]);
    out->push_back(kB64[(v >> 12) & 63]);
    out->push_back(i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=');
    out->push_back('=');
  }
}

void field(const char* name, uint64_t v, std::string* out) {
  char buf[64];
  snprintf(buf, sizeof buf, ",\"%s\":%" PRIu64, name, v);
  out->append(buf);
}
void field_signed(const char* name, int64_t v, std::string* out) {
  char buf[64];
  snprintf(buf, sizeof buf, ",\"%s\":%" PRId64, name, v);
  out->append(buf);
}

}  // namespace

const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::Create: return "create";
    case EventKind::Mkdir: return "mkdir";
    case EventKind::Symlink: return "symlink";
    case EventKind::Link: return "link";
    case EventKind::Unlink: return "unlink";
    case EventKind::Delete: return "delete";
    case EventKind::Rmdir: return "rmdir";
    case EventKind::Rename: return "rename";
    case EventKind::Attrib: return "attrib";
    case EventKind::Truncate: return "truncate";
    case EventKind::Extend: return "extend";
    case EventKind::Modify: return "modify";
    case EventKind::Overflow: return "overflow";
    case EventKind::Hash: return "hash";
  }
  return "unknown";
}

void json_string(const std::string& s, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    // Length of a valid UTF-8 sequence starting here (0: invalid).
    size_t len = 0;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xF4) {
      size_t want = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      if (i + want <= s.size()) {
        len = want;
        for (size_t k = 1; k < want; k++) {
          if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) len = 0;
        }
      }
    }
    if (len == 1) {
      if (c == '"' || c == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        char buf[8];
        snprintf(buf, sizeof buf, "\\u%04x", c);
        out->append(buf);
      } else {
        out->push_back(static_cast<char>(c));
      }
      i++;
    } else if (len > 1) {
      out->append(s, i, len);
      i += len;
    } else {
      // A raw byte that is not UTF-8: escaped as U+00XX (docs/events.md).
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out->append(buf);
      i++;
    }
  }
  out->push_back('"');
}

void event_to_json(const Event& e, std::string* out) {
  out->append("{\"seq\":");
  out->append(std::to_string(e.seq));
  out->append(",\"event\":\"");
  out->append(event_kind_name(e.kind));
  out->push_back('"');
  field("time_ns", e.time_ns, out);
  field("frame_seq", e.frame_seq, out);
  if (e.latency_us >= 0) field("latency_us", static_cast<uint64_t>(e.latency_us), out);
  out->append(",\"disk\":");
  json_string(e.disk, out);
  field("partition", e.partition, out);
  out->append(",\"fs\":");
  json_string(e.fs_uuid, out);
  if (e.kind != EventKind::Overflow) {
    field("ino", e.ino, out);
    out->append(",\"path\":");
    json_string(e.path, out);
  }
  if (e.kind == EventKind::Rename) {
    out->append(",\"old_path\":");
    json_string(e.old_path, out);
    if (e.replaced_ino != 0) field("replaced_ino", e.replaced_ino, out);
  }
  if (e.kind == EventKind::Truncate || e.kind == EventKind::Extend) {
    field("old_size", e.old_size, out);
    field("size", e.attrs.size, out);
  }
  if (e.kind == EventKind::Modify || e.kind == EventKind::Overflow) {
    field("offset", e.offset, out);
    field("length", e.length, out);
  }
  if (e.kind == EventKind::Overflow) field("lost_frames", e.lost_frames, out);
  if (e.kind == EventKind::Hash) {
    field("size", e.attrs.size, out);
    if (e.hash_skipped.empty()) {
      out->append(",\"sha256\":\"" + e.sha256 + "\",\"merkle_root\":\"" + e.merkle_root + "\"");
      field("hash_bytes_read", e.hash_bytes_read, out);
      if (!e.diff.empty()) {
        out->append(",\"diff\":");
        json_string(e.diff, out);
        field("diff_added", e.diff_added, out);
        field("diff_removed", e.diff_removed, out);
        if (e.diff_truncated) out->append(",\"diff_truncated\":true");
      }
      if (!e.changed_ranges.empty()) {
        out->append(",\"changed_ranges\":[");
        for (size_t i = 0; i < e.changed_ranges.size(); i++) {
          out->append(i ? ",[" : "[");
          out->append(std::to_string(e.changed_ranges[i].first) + "," + std::to_string(e.changed_ranges[i].second) + "]");
        }
        out->push_back(']');
        if (e.changed_ranges_cut) out->append(",\"changed_ranges_cut\":true");
      }
    } else {
      out->append(",\"hash_skipped\":");
      json_string(e.hash_skipped, out);
    }
  }
  if (e.kind == EventKind::Modify && !e.data.empty()) {
    out->append(",\"data\":\"");
    base64(e.data, out);
    out->push_back('"');
  }
  if (e.has_attrs) {
    const Inode& n = e.attrs;
    out->append(",\"attrs\":{\"type\":\"");
    out->append(file_type_name(n.type));
    out->push_back('"');
    field("mode", n.mode, out);
    field("uid", n.uid, out);
    field("gid", n.gid, out);
    field("size", n.size, out);
    field("links", n.links, out);
    field_signed("atime_ns", n.atime_ns, out);
    field_signed("mtime_ns", n.mtime_ns, out);
    field_signed("ctime_ns", n.ctime_ns, out);
    if (n.type == FileType::Symlink) {
      out->append(",\"target\":");
      json_string(n.symlink_target, out);
    }
    out->push_back('}');
  }
  out->push_back('}');
}

void JsonlEventSink::emit(const Event& event) {
  line_.clear();
  event_to_json(event, &line_);
  line_.push_back('\n');
  fwrite(line_.data(), 1, line_.size(), out_);
}

}  // namespace dsvmi

// UTF-16LE to UTF-8 for NTFS names.
#include "names.h"

#include "le.h"

namespace dsvmi::ntfs {
namespace {

void put_code_point(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += char(cp);
    return;
  }
  // Lead byte prefix and continuation count by range.
  const int extra = cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
  static const unsigned char lead[4] = {0x00, 0xC0, 0xE0, 0xF0};
  *out += char(lead[extra] | (cp >> (6 * extra)));
  for (int i = extra - 1; i >= 0; --i) *out += char(0x80 | ((cp >> (6 * i)) & 0x3F));
}

}  // namespace

std::string utf16_to_utf8(const unsigned char* p, size_t units) {
  std::string out;
  out.reserve(units);
  for (size_t i = 0; i < units; ++i) {
    const uint32_t u = le16(p + 2 * i);
    if (u >= 0xD800 && u < 0xDC00 && i + 1 < units) {
      const uint32_t v = le16(p + 2 * i + 2);
      if (v >= 0xDC00 && v < 0xE000) {
        put_code_point(0x10000 + ((u - 0xD800) << 10) + (v - 0xDC00), &out);
        ++i;
        continue;
      }
    }
    put_code_point((u >= 0xD800 && u < 0xE000) ? 0xFFFD : u, &out);
  }
  return out;
}

bool sanitize_component(std::string* name) {
  bool changed = false;
  std::string out;
  for (char c : *name) {
    if (c == '/' || c == '\0') {
      out += "\xEF\xBF\xBD";
      changed = true;
    } else {
      out += c;
    }
  }
  if (changed) *name = std::move(out);
  return changed;
}

}  // namespace dsvmi::ntfs

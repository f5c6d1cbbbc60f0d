// Short-name formatting, code page 437 and UTF-16 to UTF-8.
#include "names.h"

namespace dsvmi::fat {
namespace {

// Bytes 0x80..0xFF of code page 437 (Linux's default codepage=437).
constexpr uint16_t kCp437High[128] = {
    0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7,
    0x00EA, 0x00EB, 0x00E8, 0x00EF, 0x00EE, 0x00EC, 0x00C4, 0x00C5,
    0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9,
    0x00FF, 0x00D6, 0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192,
    0x00E1, 0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA, 0x00BA,
    0x00BF, 0x2310, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB,
    0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562, 0x2556,
    0x2555, 0x2563, 0x2551, 0x2557, 0x255D, 0x255C, 0x255B, 0x2510,
    0x2514, 0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F,
    0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256C, 0x2567,
    0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256B,
    0x256A, 0x2518, 0x250C, 0x2588, 0x2584, 0x258C, 0x2590, 0x2580,
    0x03B1, 0x00DF, 0x0393, 0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4,
    0x03A6, 0x0398, 0x03A9, 0x03B4, 0x221E, 0x03C6, 0x03B5, 0x2229,
    0x2261, 0x00B1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00F7, 0x2248,
    0x00B0, 0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0,
};

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(char(cp));
  } else if (cp < 0x800) {
    out->push_back(char(0xC0 | cp >> 6));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(char(0xE0 | cp >> 12));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(char(0xF0 | cp >> 18));
    out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  }
}

void append_oem(const unsigned char* p, size_t n, bool lower, std::string* out) {
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = p[i];
    if (c >= 0x80) {
      append_utf8(kCp437High[c - 0x80], out);
    } else {
      if (lower && c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
      out->push_back(char(c));
    }
  }
}

}  // namespace

std::string short_name(const unsigned char* e) {
  unsigned char base[8];
  for (int i = 0; i < 8; ++i) base[i] = e[i];
  if (base[0] == 0x05) base[0] = 0xE5;  // a real 0xE5 first byte, stored escaped
  size_t nb = 8, ne = 3;
  while (nb > 0 && base[nb - 1] == ' ') --nb;
  while (ne > 0 && e[8 + ne - 1] == ' ') --ne;
  std::string out;
  append_oem(base, nb, (e[12] & 0x08) != 0, &out);
  if (ne > 0) {
    out.push_back('.');
    append_oem(e + 8, ne, (e[12] & 0x10) != 0, &out);
  }
  return out;
}

uint8_t short_name_checksum(const unsigned char* name11) {
  uint8_t sum = 0;
  for (int i = 0; i < 11; ++i) sum = uint8_t(((sum & 1) << 7) + (sum >> 1) + name11[i]);
  return sum;
}

void append_utf16(const uint16_t* u, size_t n, std::string* out) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t cp = u[i];
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (u[i + 1] - 0xDC00);
      ++i;
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    append_utf8(cp, out);
  }
}

bool sanitize_name(std::string* name) {
  bool changed = false;
  std::string out;
  out.reserve(name->size());
  for (char c : *name) {
    if (c == '/' || c == '\0') {
      out += "\xEF\xBF\xBD";
      changed = true;
    } else {
      out.push_back(c);
    }
  }
  if (changed) *name = std::move(out);
  return changed;
}

}  // namespace dsvmi::fat

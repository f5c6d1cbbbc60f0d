// Argument parsing shared by the gate-* commands: sizes with binary suffixes
// ("20G", "4KiB", "512") and OFF:LEN byte ranges.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "dsvmi/gate_writer.h"

namespace dsvmi::cli {

// "4096", "4K", "4KiB", "20G", "1T" (binary multiples). False on junk or overflow.
inline bool parse_size(std::string_view text, uint64_t* out) {
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  if (i == 0) return false;
  std::string_view suffix = text.substr(i);
  int shift = 0;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'K': case 'k': shift = 10; break;
      case 'M': case 'm': shift = 20; break;
      case 'G': case 'g': shift = 30; break;
      case 'T': case 't': shift = 40; break;
      default: return false;
    }
    suffix.remove_prefix(1);
    if (!suffix.empty() && suffix != "iB" && suffix != "B") return false;
  }
  if (shift && value > (UINT64_MAX >> shift)) return false;
  *out = value << shift;
  return true;
}

// "OFF:LEN" with sizes as above.
inline bool parse_range(std::string_view text, uint64_t* offset, uint64_t* length) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  return parse_size(text.substr(0, colon), offset) && parse_size(text.substr(colon + 1), length);
}

// Applies one --add/--clear; prints the problem and returns false on failure.
inline bool apply_range(Gate& gate, std::string_view flag, std::string_view arg) {
  uint64_t offset = 0, length = 0;
  if (!parse_range(arg, &offset, &length)) {
    std::fprintf(stderr, "%.*s: expected OFF:LEN (e.g. 1M:64K), got '%.*s'\n",
                 static_cast<int>(flag.size()), flag.data(), static_cast<int>(arg.size()), arg.data());
    return false;
  }
  Status s = flag == "--add" ? gate.set_bytes(offset, length) : gate.clear_bytes(offset, length);
  if (!s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return false;
  }
  return true;
}

}  // namespace dsvmi::cli

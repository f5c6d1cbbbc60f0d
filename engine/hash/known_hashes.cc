#include "dsvmi/known_hashes.h"

#include <cctype>
#include <fstream>
#include <sstream>

namespace dsvmi {
namespace {

bool lower_hex(std::string_view s, std::string* out) {
  if (s.size() != 64) return false;
  out->resize(64);
  for (size_t i = 0; i < 64; i++) {
    const char c = s[i];
    if (c >= '0' && c <= '9') (*out)[i] = c;
    else if (c >= 'a' && c <= 'f') (*out)[i] = c;
    else if (c >= 'A' && c <= 'F') (*out)[i] = char(c - 'A' + 'a');
    else return false;
  }
  return true;
}

}  // namespace

Status KnownHashes::parse(std::string_view text, const std::string& source, KnownHashes* out) {
  KnownHashes k;
  size_t no = 0;
  std::string hex;
  while (!text.empty()) {
    ++no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    auto where = [&] { return source + " line " + std::to_string(no) + ": "; };
    if (line.size() > kMaxLine) return Status::error(where() + "longer than " + std::to_string(kMaxLine) + " bytes");
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    line.remove_prefix(first);
    if (!lower_hex(line.substr(0, 64), &hex) || (line.size() > 64 && line[64] != ' ' && line[64] != '\t'))
      return Status::error(where() + "expected a SHA-256 as 64 hex digits (sha256sum output)");
    std::string_view name = line.size() > 64 ? line.substr(65) : std::string_view();
    if (!name.empty() && (name[0] == ' ' || name[0] == '*')) name.remove_prefix(1);
    if (k.names_.size() >= kMaxEntries && !k.names_.count(hex))
      return Status::error(where() + "more than " + std::to_string(kMaxEntries) + " entries");
    k.names_.emplace(hex, std::string(name));
  }
  *out = std::move(k);
  return Status::ok();
}

Status KnownHashes::load(const std::string& path, KnownHashes* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot read the known-hash list " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path, out);
}

const std::string* KnownHashes::find(std::string_view sha256_hex) const {
  std::string hex;
  if (!lower_hex(sha256_hex, &hex)) return nullptr;
  auto it = names_.find(hex);
  return it == names_.end() ? nullptr : &it->second;
}

}  // namespace dsvmi

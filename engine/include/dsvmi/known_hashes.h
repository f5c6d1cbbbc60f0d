// KnownHashes: an allow-list of good SHA-256 digests (docs/hashes.md,
// "Known-good lists"), as a file-integrity monitor checks changes against
// one: `sha256sum` output ("<64 hex>  <name>" per line, '*' before the name
// for binary mode), blank lines and '#' comments allowed. The names are kept
// only to say which entry a digest came from; matching is by digest alone
// (a known binary copied to a new path is still known).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dsvmi/status.h"

namespace dsvmi {

class KnownHashes {
 public:
  // At most this many entries and this many bytes per line: the list is
  // input, and a hostile or mistaken one must not exhaust memory.
  static constexpr size_t kMaxEntries = 16u << 20;
  static constexpr size_t kMaxLine = 8192;

  // Parses `text`; `source` names it in errors ("FILE line N: ...").
  static Status parse(std::string_view text, const std::string& source, KnownHashes* out);
  static Status load(const std::string& path, KnownHashes* out);

  // The entry's name for a lower- or upper-case hex digest, or nullptr.
  const std::string* find(std::string_view sha256_hex) const;
  size_t size() const { return names_.size(); }

 private:
  std::unordered_map<std::string, std::string> names_;  // lower-case hex -> first name listed
};

}  // namespace dsvmi

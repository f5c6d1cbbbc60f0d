// KnownHashes::parse on arbitrary bytes: never crashes, and every digest it
// accepted is found again.
#include <cstdint>
#include <cstdlib>
#include <string_view>


#include "dsvmi/known_hashes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  dsvmi::KnownHashes k;
  if (!dsvmi::KnownHashes::parse(text, "fuzz", &k)) return 0;
  // The first line, if it holds a digest, was accepted: it must be found.
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos || text.size() < first + 64) return 0;
  std::string_view digest = text.substr(first, 64);
  if (digest.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) return 0;
  if (k.find(digest) == nullptr) std::abort();
  return 0;
}

// unified_diff on two arbitrary versions (the input split at its first
// 0xFF byte): never crashes, stays within its output cap, counts every line
// of a whole-file replacement, and is empty exactly for equal versions.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "../../../engine/infer/text_diff.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\xff');
  std::string_view a = in.substr(0, cut), b = cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1);
  dsvmi::infer::DiffLimits lim;
  lim.max_edits = 64;
  lim.max_bytes = 4096;
  dsvmi::infer::is_text(a);
  const dsvmi::infer::TextDiff d = dsvmi::infer::unified_diff(a, b, "a", "b", lim);
  if (d.text.size() > lim.max_bytes) std::abort();
  if ((a == b) != d.text.empty() && !(d.truncated && d.text.empty())) std::abort();
  if (a != b && d.added + d.removed == 0) std::abort();
  return 0;
}

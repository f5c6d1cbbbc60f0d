// Unified diffs of small text files for hash events (docs/hashes.md,
// "Diffs"): what `diff -u` prints, from a minimal line edit script (Myers'
// O(ND) algorithm), with the work and the output bounded because both
// versions come from the guest.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dsvmi::infer {

// True if `bytes` looks like text: no NUL byte and valid UTF-8.
bool is_text(std::string_view bytes);

struct DiffLimits {
  size_t max_edits = 1000;       // more edited lines: one hunk replacing the whole file (memory O(max_edits^2))
  size_t max_bytes = 16 << 10;   // output cap; past it the diff is cut at a line end
};

struct TextDiff {
  std::string text;        // "--- a\n+++ b\n@@ ... @@\n..." ("" if equal)
  size_t added = 0, removed = 0;  // lines, over the whole diff (also when cut)
  bool truncated = false;  // text was cut at max_bytes
  bool minimal = true;     // false: over max_edits, whole-file replacement
};

// The unified diff (3 lines of context) turning `a` into `b`, headed
// "--- a_name" / "+++ b_name". A last line without a newline gets
// "\ No newline at end of file", as diff -u writes it.
TextDiff unified_diff(std::string_view a, std::string_view b, const std::string& a_name, const std::string& b_name,
                      const DiffLimits& limits);

}  // namespace dsvmi::infer

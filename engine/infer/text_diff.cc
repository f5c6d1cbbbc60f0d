#include "text_diff.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace dsvmi::infer {
namespace {

constexpr size_t kContext = 3;

// Lines with their '\n' (the last one may lack it).
std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const size_t nl = s.find('\n');
    const size_t n = nl == std::string_view::npos ? s.size() : nl + 1;
    out.push_back(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out;
}

enum class Op : uint8_t { Equal, Delete, Insert };
struct Edit {
  Op op;
  size_t a, b;  // line index in a (Equal, Delete) and b (Equal, Insert)
};

// Myers' greedy forward search keeping V at the start of each step (only
// the window [-d, d] it can read: O(D^2) ints in all), then the backtrack.
// Returns false when more than max_edits edits are needed.
bool myers(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b, size_t max_edits,
           std::vector<Edit>* out) {
  const int64_t n = int64_t(a.size()), m = int64_t(b.size());
  const int64_t max = std::min<int64_t>(n + m, int64_t(max_edits));
  const int64_t off = max + 1;
  std::vector<int64_t> v(size_t(2 * max + 3), 0);
  std::vector<std::vector<int64_t>> trace;
  int64_t found = -1;
  for (int64_t d = 0; d <= max && found < 0; d++) {
    trace.emplace_back(v.begin() + (off - d - 1), v.begin() + (off + d + 2));  // k in [-d-1, d+1]
    for (int64_t k = -d; k <= d; k += 2) {
      int64_t x = (k == -d || (k != d && v[size_t(off + k - 1)] < v[size_t(off + k + 1)])) ? v[size_t(off + k + 1)]
                                                                                        : v[size_t(off + k - 1)] + 1;
      int64_t y = x - k;
      while (x < n && y < m && a[size_t(x)] == b[size_t(y)]) x++, y++;
      v[size_t(off + k)] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return false;
  std::vector<Edit> rev;
  int64_t x = n, y = m;
  for (int64_t d = found; d > 0; d--) {
    const std::vector<int64_t>& t = trace[size_t(d)];  // V after step d-1, index k + d + 1
    auto at = [&](int64_t k) { return t[size_t(k + d + 1)]; };
    const int64_t k = x - y;
    const bool down = k == -d || (k != d && at(k - 1) < at(k + 1));
    const int64_t pk = down ? k + 1 : k - 1;
    const int64_t px = at(pk), py = px - pk;
    const int64_t sx = down ? px : px + 1, sy = down ? py + 1 : py;  // after the edit
    while (x > sx && y > sy) rev.push_back({Op::Equal, size_t(--x), size_t(--y)});
    if (down) rev.push_back({Op::Insert, size_t(px), size_t(py)});
    else rev.push_back({Op::Delete, size_t(px), size_t(py)});
    x = px;
    y = py;
  }
  while (x > 0 && y > 0) rev.push_back({Op::Equal, size_t(--x), size_t(--y)});
  out->assign(rev.rbegin(), rev.rend());
  return true;
}

void range(size_t start, size_t count, std::string* out) {
  // GNU diff: "l" for one line, "l,c" otherwise; an empty range names the
  // line before it.
  *out += std::to_string(count == 0 ? start : start + 1);
  if (count != 1) out->append(",").append(std::to_string(count));
}

void line(char tag, std::string_view l, std::string* out) {
  out->push_back(tag);
  out->append(l);
  if (l.empty() || l.back() != '\n') out->append("\n\\ No newline at end of file\n");
}

}  // namespace

bool is_text(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; k++)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

TextDiff unified_diff(std::string_view a_text, std::string_view b_text, const std::string& a_name,
                      const std::string& b_name, const DiffLimits& limits) {
  TextDiff r;
  if (a_text == b_text) return r;
  const std::vector<std::string_view> a = split_lines(a_text), b = split_lines(b_text);
  std::vector<Edit> edits;
  if (!myers(a, b, limits.max_edits, &edits)) {
    r.minimal = false;
    edits.clear();
    for (size_t i = 0; i < a.size(); i++) edits.push_back({Op::Delete, i, 0});
    for (size_t j = 0; j < b.size(); j++) edits.push_back({Op::Insert, a.size(), j});
  }
  for (const Edit& e : edits) {
    if (e.op == Op::Delete) r.removed++;
    if (e.op == Op::Insert) r.added++;
  }
  std::string out = "--- " + a_name + "\n+++ " + b_name + "\n";
  // Hunks: runs of edits with at most 2 * kContext equal lines between them.
  size_t i = 0;
  while (i < edits.size()) {
    while (i < edits.size() && edits[i].op == Op::Equal) i++;
    if (i == edits.size()) break;
    size_t first = i >= kContext ? i - kContext : 0;
    size_t last = i;  // one past the last edit of the hunk
    for (size_t j = i; j < edits.size(); j++) {
      if (edits[j].op != Op::Equal) {
        last = j + 1;
      } else if (j - last >= 2 * kContext) {
        break;
      }
    }
    const size_t end = std::min(edits.size(), last + kContext);
    size_t a_start = SIZE_MAX, b_start = SIZE_MAX, a_count = 0, b_count = 0;
    for (size_t j = first; j < end; j++) {
      const Edit& e = edits[j];
      if (e.op != Op::Insert) a_start = std::min(a_start, e.a), a_count++;
      if (e.op != Op::Delete) b_start = std::min(b_start, e.b), b_count++;
    }
    // An empty side starts where the hunk's first edit is.
    if (a_count == 0) a_start = edits[first].a;
    if (b_count == 0) b_start = edits[first].b;
    out += "@@ -";
    range(a_start, a_count, &out);
    out += " +";
    range(b_start, b_count, &out);
    out += " @@\n";
    for (size_t j = first; j < end; j++) {
      const Edit& e = edits[j];
      if (e.op == Op::Equal) line(' ', a[e.a], &out);
      else if (e.op == Op::Delete) line('-', a[e.a], &out);
      else line('+', b[e.b], &out);
    }
    i = end;
  }
  if (out.size() > limits.max_bytes) {
    size_t cut = out.rfind('\n', limits.max_bytes == 0 ? 0 : limits.max_bytes - 1);
    out.resize(cut == std::string::npos ? 0 : cut + 1);
    r.truncated = true;
  }
  r.text = std::move(out);
  return r;
}

}  // namespace dsvmi::infer

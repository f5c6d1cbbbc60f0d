#include "dsvmi/glob.h"

namespace dsvmi {

Status Glob::compile(std::string_view p, Glob* out) {
  if (p.size() > 4096) return Status::error("glob longer than 4096 bytes");
  Glob g;
  g.pattern_ = std::string(p);
  for (size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (c == '*' && i + 1 < p.size() && p[i + 1] == '*') {
      const bool at_component_start = i == 0 || p[i - 1] == '/';
      if (at_component_start && i + 2 < p.size() && p[i + 2] == '/') {
        g.tokens_.push_back({Op::Dirs, 0, false, {}});  // "**/": zero or more whole directories
        i += 3;
      } else {
        g.tokens_.push_back({Op::DoubleStar, 0, false, {}});
        i += 2;
        while (i < p.size() && p[i] == '*') ++i;  // "***" is "**"
      }
    } else if (c == '*') {
      g.tokens_.push_back({Op::Star, 0, false, {}});
      ++i;
    } else if (c == '?') {
      g.tokens_.push_back({Op::AnyChar, 0, false, {}});
      ++i;
    } else if (c == '[') {
      size_t j = i + 1;
      Token t{Op::Class, 0, false, {}};
      if (j < p.size() && (p[j] == '!' || p[j] == '^')) {
        t.negate = true;
        ++j;
      }
      bool closed = false;
      for (bool first = true; j < p.size(); first = false) {
        if (p[j] == ']' && !first) {
          closed = true;
          break;
        }
        char lo = p[j], hi = lo;
        if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
          hi = p[j + 2];
          j += 3;
        } else {
          ++j;
        }
        t.ranges += lo;
        t.ranges += hi;
      }
      if (closed) {
        g.tokens_.push_back(std::move(t));
        i = j + 1;
      } else {
        g.tokens_.push_back({Op::Literal, '[', false, {}});  // no ']': a literal '['
        ++i;
      }
    } else if (c == '\\' && i + 1 < p.size()) {
      g.tokens_.push_back({Op::Literal, p[i + 1], false, {}});
      i += 2;
    } else {
      g.tokens_.push_back({Op::Literal, c, false, {}});
      ++i;
    }
  }
  *out = std::move(g);
  return Status::ok();
}

bool Glob::matches(std::string_view text) const {
  const size_t n = tokens_.size();
  // active[i]: about to match token i (n = accepted). inside[i]: within a
  // directory name consumed by a Dirs token i (leaves it at the next '/').
  std::vector<char> active(n + 1, 0), inside(n + 1, 0), next(n + 1, 0), next_inside(n + 1, 0);
  auto close = [&](std::vector<char>& a) {
    for (size_t i = 0; i < n; ++i) {
      const Op op = tokens_[i].op;
      if (a[i] && (op == Op::Star || op == Op::DoubleStar || op == Op::Dirs)) a[i + 1] = 1;
    }
  };
  active[0] = 1;
  close(active);
  for (char c : text) {
    std::fill(next.begin(), next.end(), 0);
    std::fill(next_inside.begin(), next_inside.end(), 0);
    bool any = false;
    for (size_t i = 0; i < n; ++i) {
      if (inside[i]) {
        (c == '/' ? next[i] : next_inside[i]) = 1;
        any = true;
      }
      if (!active[i]) continue;
      const Token& t = tokens_[i];
      switch (t.op) {
        case Op::Literal:
          if (c == t.literal) next[i + 1] = 1;
          break;
        case Op::AnyChar:
          if (c != '/') next[i + 1] = 1;
          break;
        case Op::Class: {
          if (c == '/') break;
          bool in = false;
          for (size_t r = 0; r + 1 < t.ranges.size(); r += 2)
            in |= (unsigned char)c >= (unsigned char)t.ranges[r] && (unsigned char)c <= (unsigned char)t.ranges[r + 1];
          if (in != t.negate) next[i + 1] = 1;
          break;
        }
        case Op::Star:
          if (c != '/') next[i] = 1;
          break;
        case Op::DoubleStar:
          next[i] = 1;
          break;
        case Op::Dirs:
          (c == '/' ? next[i] : next_inside[i]) = 1;
          break;
      }
      any = true;
    }
    if (!any) return false;
    close(next);
    active.swap(next);
    inside.swap(next_inside);
  }
  return active[n] != 0;
}

}  // namespace dsvmi

// unified_diff (engine/infer/text_diff.h) against GNU diff and patch: for
// random edits of random text, `patch` applied to the old version with our
// diff gives the new version, and our added/removed line counts equal
// `diff -u`'s (both are minimal edit scripts); hostile sizes stay bounded.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "../../../engine/infer/text_diff.h"
#include "../common/shell.h"
#include "../common/temp_dir.h"

namespace dsvmi::infer {
namespace {

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// (added, removed) lines in diff -u's output.
std::pair<size_t, size_t> gnu_counts(const std::string& diff) {
  size_t add = 0, del = 0;
  std::istringstream in(diff);
  std::string l;
  while (std::getline(in, l)) {
    if (l.rfind("+++", 0) == 0 || l.rfind("---", 0) == 0) continue;
    if (!l.empty() && l[0] == '+') add++;
    if (!l.empty() && l[0] == '-') del++;
  }
  return {add, del};
}

std::string random_text(std::mt19937& r, size_t lines) {
  static const char* words[] = {"alpha", "beta", "gamma", "", "delta", "PermitRootLogin yes", "x"};
  std::string s;
  for (size_t i = 0; i < lines; i++) s += std::string(words[r() % 7]) + "\n";
  return s;
}

std::string mutate(std::mt19937& r, std::string s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  const int n = 1 + int(r() % 6);
  for (int k = 0; k < n; k++) {
    const size_t at = lines.empty() ? 0 : r() % (lines.size() + 1);
    switch (r() % 3) {
      case 0: lines.insert(lines.begin() + long(at), "inserted " + std::to_string(r() % 100)); break;
      case 1: if (at < lines.size()) lines.erase(lines.begin() + long(at)); break;
      default: if (at < lines.size()) lines[at] = "changed " + std::to_string(r() % 100);
    }
  }
  std::string out;
  for (const auto& x : lines) out += x + "\n";
  if (!out.empty() && r() % 4 == 0) out.pop_back();  // no newline at the end
  return out;
}

TEST(TextDiff, PatchAppliesAndCountsMatchGnuDiff) {
  testing::TempDir dir("dsvmi-diff");
  std::mt19937 r(1234);
  for (int round = 0; round < 60; round++) {
    const std::string a = round % 10 == 0 ? "" : random_text(r, r() % 80);
    const std::string b = mutate(r, a);
    write(dir / "a", a);
    write(dir / "b", b);
    TextDiff d = unified_diff(a, b, "a/f", "b/f", DiffLimits());
    ASSERT_FALSE(d.truncated);
    ASSERT_TRUE(d.minimal);
    if (a == b) {
      EXPECT_TRUE(d.text.empty());
      continue;
    }
    write(dir / "p.diff", d.text);
    write(dir / "work", a);
    int rc = 0;
    const std::string out = shell::run("patch -s " + shell::quote(dir / "work") + " " + shell::quote(dir / "p.diff") +
                                       " 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out << "\n" << d.text;
    ASSERT_EQ(read(dir / "work"), b) << d.text;
    const auto [add, del] = gnu_counts(shell::run("diff -u " + shell::quote(dir / "a") + " " + shell::quote(dir / "b")));
    EXPECT_EQ(d.added, add) << d.text;
    EXPECT_EQ(d.removed, del) << d.text;
  }
}

TEST(TextDiff, SameHunksAsGnuDiffOnAConfigChange) {
  testing::TempDir dir("dsvmi-diff");
  std::string a, b;
  for (int i = 0; i < 40; i++) a += "Option" + std::to_string(i) + " value\n";
  b = a;
  b.replace(b.find("Option5 value"), 13, "Option5 changed");
  b += "NewOption yes\n";
  write(dir / "a", a);
  write(dir / "b", b);
  TextDiff d = unified_diff(a, b, "a", "b", DiffLimits());
  std::string gnu = shell::run("diff -u " + shell::quote(dir / "a") + " " + shell::quote(dir / "b") + " | tail -n +3");
  EXPECT_EQ(d.text.substr(d.text.find("@@")), gnu);
}

TEST(TextDiff, BoundedOnHostileInput) {
  // Every line differs: past max_edits one whole-file hunk, still correct.
  std::string a, b;
  for (int i = 0; i < 5000; i++) {
    a.append("a").append(std::to_string(i)).append("\n");
    b.append("b").append(std::to_string(i)).append("\n");
  }
  DiffLimits lim;
  lim.max_edits = 100;
  lim.max_bytes = 1 << 20;
  TextDiff d = unified_diff(a, b, "a", "b", lim);
  EXPECT_FALSE(d.minimal);
  EXPECT_EQ(d.added, 5000u);
  EXPECT_EQ(d.removed, 5000u);
  testing::TempDir dir("dsvmi-diff");
  write(dir / "work", a);
  write(dir / "p.diff", d.text);
  int rc = 0;
  shell::run("patch -s " + shell::quote(dir / "work") + " " + shell::quote(dir / "p.diff"), &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(read(dir / "work"), b);
  // The output cap cuts at a line end.
  lim.max_bytes = 1000;
  d = unified_diff(a, b, "a", "b", lim);
  EXPECT_TRUE(d.truncated);
  EXPECT_LE(d.text.size(), 1000u);
  EXPECT_EQ(d.text.back(), '\n');
}

TEST(TextDiff, TextDetection) {
  EXPECT_TRUE(is_text("plain\n"));
  EXPECT_TRUE(is_text("caf\xc3\xa9\n"));
  EXPECT_FALSE(is_text(std::string("a\0b", 3)));
  EXPECT_FALSE(is_text("\xff\xfe"));
  EXPECT_FALSE(is_text("\xc3"));  // cut sequence
}

}  // namespace
}  // namespace dsvmi::infer

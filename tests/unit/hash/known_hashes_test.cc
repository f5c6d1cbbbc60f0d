// KnownHashes (dsvmi/known_hashes.h) against real sha256sum output, and
// hostile lists: every bad line is refused with its line number.
#include <gtest/gtest.h>

#include <fstream>

#include "dsvmi/known_hashes.h"
#include "../common/shell.h"
#include "../common/temp_dir.h"

namespace dsvmi {
namespace {

TEST(KnownHashes, ReadsSha256sumOutput) {
  testing::TempDir dir("dsvmi-known");
  std::ofstream(dir / "a") << "alpha\n";
  std::ofstream(dir / "b b") << "beta\n";
  const std::string list = shell::run("cd " + shell::quote(dir.path()) + " && sha256sum a 'b b' && sha256sum -b a");
  KnownHashes k;
  ASSERT_TRUE(KnownHashes::parse("# made by sha256sum\n\n" + list, "list", &k)) << list;
  EXPECT_EQ(k.size(), 2u);
  const std::string a = shell::run("sha256sum " + shell::quote(dir / "a")).substr(0, 64);
  const std::string b = shell::run("sha256sum " + shell::quote(dir / "b b")).substr(0, 64);
  ASSERT_NE(k.find(a), nullptr);
  EXPECT_EQ(*k.find(a), "a");
  ASSERT_NE(k.find(b), nullptr);
  EXPECT_EQ(*k.find(b), "b b");
  std::string upper = a;
  for (char& c : upper) c = char(std::toupper(c));
  EXPECT_NE(k.find(upper), nullptr);
  EXPECT_EQ(k.find(std::string(64, '0')), nullptr);
  EXPECT_EQ(k.find("not-hex"), nullptr);
}

TEST(KnownHashes, RefusesBadLinesNamingThem) {
  const std::string good(64, 'a');
  struct Case {
    std::string text, want;
  } cases[] = {
      {good + "  x\nnot a digest\n", "list line 2: expected a SHA-256"},
      {std::string(63, 'a') + "  short\n", "list line 1: expected"},
      {std::string(64, 'g') + "  nothex\n", "list line 1: expected"},
      {good + "x  glued\n", "list line 1: expected"},
      {std::string(KnownHashes::kMaxLine + 1, 'a') + "\n", "longer than"},
  };
  for (const Case& c : cases) {
    KnownHashes k;
    Status s = KnownHashes::parse(c.text, "list", &k);
    EXPECT_FALSE(s) << c.text.substr(0, 80);
    EXPECT_NE(s.message().find(c.want), std::string::npos) << s.message();
  }
  KnownHashes k;
  EXPECT_FALSE(KnownHashes::load("/nonexistent/list", &k));
  // Binary junk is refused, not crashed on.
  std::string junk;
  for (int i = 0; i < 4096; i++) junk.push_back(char(i * 131 + 7));
  EXPECT_FALSE(KnownHashes::parse(junk, "junk", &k));
}

}  // namespace
}  // namespace dsvmi

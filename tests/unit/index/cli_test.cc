// The crawl/ls/stat commands as a user runs them: output against debugfs, one
// clear line on stderr for each error (missing file, not an index, stale
// index, no such path), and the gate a crawl publishes as QEMU's reader
// (dsvmi_gate_should_pass) sees it: metadata passes, file data drops.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "dsvmi/daemon_json.h"
#include "dsvmi/gate.h"
#include "oracle_util.h"

namespace dsvmi {
namespace {

using test::quote;
using test::run;

struct Result {
  int status;
  std::string out, err;
};

Result dsvmi_cli(const std::string& args, const std::string& dir) {
  Result r;
  const std::string err = dir + "/stderr";
  r.out = run(std::string(DSVMI_BIN) + " " + args + " 2>" + quote(err), &r.status);
  r.err = run("cat " + quote(err));
  return r;
}

size_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

TEST(IndexCli, CrawlLsStatAndErrors) {
  test::TempDir tmp;
  const std::string d = tmp.path.string();
  run("mkdir -p " + d + "/tree/etc " + d + "/tree/home/u && echo hi > " + d + "/tree/etc/passwd && ln " + d +
      "/tree/etc/passwd " + d + "/tree/home/u/hard && seq 1 50000 > " + d + "/tree/home/u/big");
  int st;
  run("mkfs.ext4 -q -F -b 4096 -d " + quote(d + "/tree") + " " + quote(d + "/disk.img") + " 32M 2>&1", &st);
  ASSERT_EQ(st, 0);

  Result r = dsvmi_cli("crawl " + quote(d + "/disk.img") + " --index " + quote(d + "/disk.dsvx") + " --gate " +
                           quote(d + "/disk.gate"),
                       d);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("ext4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("index        "), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << "no progress bar without a TTY: " << r.err;

  // ls / equals debugfs's listing of the root.
  r = dsvmi_cli("ls " + quote(d + "/disk.dsvx") + " /", d);
  ASSERT_EQ(r.status, 0) << r.err;
  std::set<std::string> names;  // ls prints in name order, debugfs in block order
  for (auto& e : test::parse_ls_p(run("debugfs -R 'ls -p /' " + quote(d + "/disk.img") + " 2>/dev/null")))
    names.insert(e.name);
  std::string want;
  for (auto& n : names) want += n + "\n";
  EXPECT_EQ(r.out, want);

  // ls --json: one record per name, inode, permission bits and owner as
  // debugfs has them (docs/cli-json.md).
  r = dsvmi_cli("ls --json " + quote(d + "/disk.dsvx") + " /home/u", d);
  ASSERT_EQ(r.status, 0) << r.err;
  std::map<std::string, Json> got;
  std::istringstream records(r.out);
  for (std::string line; std::getline(records, line);) {
    Json j;
    ASSERT_TRUE(Json::parse(line, &j)) << line;
    got[j.get_string("name")] = j;
  }
  size_t compared = 0;
  for (auto& e : test::parse_ls_p(run("debugfs -R 'ls -p /home/u' " + quote(d + "/disk.img") + " 2>/dev/null"))) {
    if (e.name == "." || e.name == "..") continue;
    ASSERT_TRUE(got.count(e.name)) << e.name << " missing from " << r.out;
    const Json& j = got[e.name];
    EXPECT_EQ(j.get_uint64("ino"), e.ino) << e.name;
    EXPECT_EQ(j.get_uint64("mode"), e.mode & 07777) << e.name;
    EXPECT_EQ(j.get_uint64("uid"), e.uid) << e.name;
    EXPECT_EQ(j.get_uint64("gid"), e.gid) << e.name;
    EXPECT_EQ(j.get_string("type"), "file") << e.name;
    compared++;
  }
  EXPECT_EQ(compared, 2u) << r.out;  // hard, big
  EXPECT_EQ(got.size(), compared) << r.out;
  EXPECT_EQ(got["big"].get_uint64("size"), uint64_t(std::stoull(run("stat -c %s " + quote(d + "/tree/home/u/big")))));

  r = dsvmi_cli("stat " + quote(d + "/disk.dsvx") + " /home/u/hard", d);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Names: /etc/passwd /home/u/hard"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Links: 2"), std::string::npos) << r.out;

  // Errors: one line each, exit status 1.
  struct Case {
    std::string args, needle;
  } cases[] = {
      {"ls " + quote(d + "/missing.dsvx") + " /", "No such file"},
      {"ls " + quote(d + "/disk.img") + " /", "not a dsvmi index"},
      {"ls " + quote(d + "/disk.dsvx") + " /nope", "no such file or directory"},
      {"stat " + quote(d + "/disk.dsvx") + " /home/nope", "no such file or directory"},
  };
  for (const auto& c : cases) {
    r = dsvmi_cli(c.args, d);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
  }

  // The published gate, read through the C ABI QEMU uses.
  char err[256];
  dsvmi_gate_reader_t* reader = dsvmi_gate_reader_open((d + "/disk.gate").c_str(), err, sizeof err);
  ASSERT_NE(reader, nullptr) << err;
  auto big = test::parse_stat(run("debugfs -R 'stat /home/u/big' " + quote(d + "/disk.img") + " 2>/dev/null"));
  ASSERT_FALSE(big.blocks.empty());
  for (auto& [l, p] : big.blocks) EXPECT_FALSE(dsvmi_gate_should_pass(reader, p * 4096, 4096)) << "data block " << p;
  auto layout = test::dumpe2fs_layout(d + "/disk.img");
  for (auto& [b, kind] : layout) EXPECT_TRUE(dsvmi_gate_should_pass(reader, b * 4096, 4096)) << kind << " " << b;
  auto root = test::parse_stat(run("debugfs -R 'stat /' " + quote(d + "/disk.img") + " 2>/dev/null"));
  for (auto& [l, p] : root.blocks) EXPECT_TRUE(dsvmi_gate_should_pass(reader, p * 4096, 4096)) << "dir block " << p;
  dsvmi_gate_reader_close(reader);

  // A glob policy then passes /home/u/big's data.
  r = dsvmi_cli("crawl " + quote(d + "/disk.img") + " --index " + quote(d + "/disk.dsvx") + " --gate " +
                    quote(d + "/disk.gate") + " --glob '/home/**'",
                d);
  ASSERT_EQ(r.status, 0) << r.err;
  reader = dsvmi_gate_reader_open((d + "/disk.gate").c_str(), err, sizeof err);
  ASSERT_NE(reader, nullptr) << err;
  for (auto& [l, p] : big.blocks) EXPECT_TRUE(dsvmi_gate_should_pass(reader, p * 4096, 4096)) << "data block " << p;
  dsvmi_gate_reader_close(reader);

  // Re-formatted disk: the index is refused as stale.
  run("mkfs.ext4 -q -F " + quote(d + "/disk.img") + " 32M 2>&1", &st);
  r = dsvmi_cli("ls " + quote(d + "/disk.dsvx") + " / --disk " + quote(d + "/disk.img"), d);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("stale index"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("re-formatted"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace dsvmi

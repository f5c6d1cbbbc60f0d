// The gate-* commands a QEMU integration test drives from the shell: what
// they publish is what a reader then answers (checked against a model of the
// ranges given on the command line).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dsvmi/daemon_json.h"
#include "dsvmi/gate.h"
#include "gate_test_util.h"

#ifndef DSVMI_CLI
#error "DSVMI_CLI must name the dsvmi binary"
#endif

namespace dsvmi {
namespace {

std::string run(const std::string& args, int* rc) {
  std::string cmd = std::string(DSVMI_CLI) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (p && fgets(buf, sizeof(buf), p)) out += buf;
  int status = p ? pclose(p) : -1;
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(GateCli, CreateSetStatDriveTheReader) {
  test::ScratchPath path("cli");
  const uint64_t disk = 20ull << 30;
  std::vector<bool> model(disk >> 12);
  auto apply = [&](uint64_t off, uint64_t len, bool v) {
    for (uint64_t g = off >> 12; g <= (off + len - 1) >> 12; g++) model[g] = v;
  };
  int rc = 0;
  std::string out = run("gate-create " + path.str() + " --disk-size 20G --grain 4K --mode set" +
                            " --add 0:1M --add 1G:4K --add 1048575:2",
                        &rc);
  ASSERT_EQ(rc, 0) << out;
  apply(0, 1 << 20, true);
  apply(1ull << 30, 4096, true);
  apply(1048575, 2, true);  // straddles grains 255 and 256
  out = run("gate-set " + path.str() + " --add 2G:64K --clear 0:4K", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("generation: 3"), std::string::npos) << out;
  apply(2ull << 30, 65536, true);
  apply(0, 4096, false);

  dsvmi_gate_reader_t* r = dsvmi_gate_reader_open(path.c_str(), nullptr, 0);
  ASSERT_NE(r, nullptr);
  for (uint64_t g = 0; g < 600; g++)
    EXPECT_EQ(dsvmi_gate_should_pass(r, g << 12, 4096), model[g]) << g;
  for (uint64_t g : {262143ull, 262144ull, 262145ull, 524287ull, 524288ull, 524303ull, 524304ull})
    EXPECT_EQ(dsvmi_gate_should_pass(r, g << 12, 4096), model[g]) << g;

  out = run("gate-stat " + path.str(), &rc);
  ASSERT_EQ(rc, 0) << out;
  uint64_t set = 0;
  for (bool b : model) set += b;
  EXPECT_NE(out.find("set_grains: " + std::to_string(set) + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("mode: set\n"), std::string::npos) << out;
  EXPECT_NE(out.find("writes_passed: "), std::string::npos) << out;
  // The same snapshot as JSON (docs/cli-json.md), numbers exact.
  out = run("gate-stat --json " + path.str(), &rc);
  ASSERT_EQ(rc, 0) << out;
  Json j;
  ASSERT_TRUE(Json::parse(out, &j)) << out;
  EXPECT_EQ(j.get_uint64("set_grains"), set) << out;
  EXPECT_EQ(j.get_uint64("set_bytes"), set * 4096) << out;
  EXPECT_EQ(j.get_uint64("disk_size"), disk) << out;
  EXPECT_EQ(j.get_uint64("generation"), 3u) << out;
  EXPECT_EQ(j.get_string("mode"), "set") << out;
  EXPECT_TRUE(j.get("valid") && j.get("valid")->as_bool()) << out;
  ASSERT_TRUE(j.get("reader_view") && j.get("reader_view")->is_object()) << out;  // the reader above holds a view

  // drop-all while the reader is attached, then a bad range is refused whole
  out = run("gate-set " + path.str() + " --mode drop-all", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_FALSE(dsvmi_gate_should_pass(r, 1ull << 30, 4096));
  out = run("gate-set " + path.str() + " --mode set --add 30G:4K", &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("disk end"), std::string::npos) << out;
  EXPECT_FALSE(dsvmi_gate_should_pass(r, 1ull << 30, 4096)) << "nothing was published";
  out = run("gate-set " + path.str() + " --add 12:oops", &rc);
  EXPECT_EQ(rc, 1) << out;
  out = run("gate-stat /nonexistent/gate", &rc);
  EXPECT_EQ(rc, 1) << out;
  out = run("gate-stat --json /nonexistent/gate", &rc);
  EXPECT_EQ(rc, 1) << out;
  dsvmi_gate_reader_close(r);
}

}  // namespace
}  // namespace dsvmi

// The engine sandbox holds (docs/security.md, "How each claim is tested"):
// sandbox_probe enters the sandbox the engine enters and attempts what a
// compromised engine would; each attempt is killed (SIGSYS) or refused, and
// the daemon's child supervisor names the cause.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "child.h"
#include "dsvmi/sandbox.h"

namespace {

using dsvmi::daemon_internal::Child;

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dsvmi-sandbox-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/policy") << "mode = metadata\n";
    // What the daemon does with its state dir: searchable by the sandbox
    // group, not listable (the engine reads its policy file by name).
    dsvmi::share_with_sandbox(dir_, 0710);
    dsvmi::share_with_sandbox(dir_ + "/policy", 0640);
  }
  void TearDown() override {
    std::remove((dir_ + "/policy").c_str());
    ::rmdir(dir_.c_str());
  }
  // Runs the probe as the daemon runs an engine; returns its exit text.
  std::string run(const std::string& action, std::string* out = nullptr) {
    Child c;
    EXPECT_TRUE(c.start({SANDBOX_PROBE, dir_, action}, 2));
    std::string lines;
    c.drain([&](const std::string& l) { lines += l + "\n"; }, 4096);
    c.kill();  // reaps (it has exited: its pipe is closed)
    if (out) *out = lines;
    return c.exit_text();
  }
  std::string dir_;
};

TEST_F(SandboxTest, WhatAnEngineDoesIsAllowed) {
  std::string out;
  EXPECT_EQ(run("allowed", &out), "status 0");
  EXPECT_EQ(out, "ok\n");
}

TEST_F(SandboxTest, RootDropsToTheSandboxUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "not root: there is no uid to drop";
  std::string out;
  ASSERT_EQ(run("uid", &out), "status 0");
  EXPECT_NE(out, "0\n");
}

TEST_F(SandboxTest, ShadowIsRefused) {
  // Refused by Landlock (where offered) and by the user drop; either way
  // the open fails or the process dies, never succeeds.
  std::string t = run("shadow");
  EXPECT_TRUE(t == "status 10" || t.find("SIGSYS") != std::string::npos) << t;
}

TEST_F(SandboxTest, ExecveIsKilledAndTheCauseNamed) {
  EXPECT_EQ(run("execve"), "signal 31 (SIGSYS: a system call outside the sandbox's allow-list)");
}

TEST_F(SandboxTest, InetSocketIsKilled) { EXPECT_NE(run("socket").find("SIGSYS"), std::string::npos); }

TEST_F(SandboxTest, PtraceIsKilled) { EXPECT_NE(run("ptrace").find("SIGSYS"), std::string::npos); }

TEST_F(SandboxTest, SetuidBackIsKilled) { EXPECT_NE(run("setuid").find("SIGSYS"), std::string::npos); }

}  // namespace

// Running the outside oracles (mkfs.ext4, debugfs, dumpe2fs, sfdisk, sgdisk,
// e2fsck) from GoogleTest tests: one shell helper for every component's tests.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace dsvmi::shell {

// Runs `command` through /bin/sh and returns its stdout; *exit_code gets the
// exit status (-1 if it could not run or was killed by a signal).
inline std::string run(const std::string& command, int* exit_code = nullptr) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    if (exit_code) *exit_code = -1;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (exit_code) *exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

// `s` as one single-quoted shell word.
inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''"; else q += c;
  }
  return q + "'";
}

}  // namespace dsvmi::shell

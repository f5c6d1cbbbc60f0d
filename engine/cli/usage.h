// How every subcommand answers for its usage (tested by tests/integration/cli):
// `--help` or `-h` prints the usage on stdout and exits 0; an argument the
// command cannot take prints the usage on stderr and exits 2.
#pragma once

#include <cstdio>
#include <cstring>

namespace dsvmi::cli {

inline bool is_help_arg(const char* arg) { return !std::strcmp(arg, "-h") || !std::strcmp(arg, "--help"); }

// True if -h/--help is among argv[0..argc).
inline bool wants_help(int argc, char** argv) {
  for (int i = 0; i < argc; i++)
    if (is_help_arg(argv[i])) return true;
  return false;
}

// Prints `text` on stdout and returns 0 when help was asked for; otherwise on
// stderr, returning 2 (a usage error).
inline int usage_exit(bool help, const char* text) {
  std::fputs(text, help ? stdout : stderr);
  return help ? 0 : 2;
}

}  // namespace dsvmi::cli

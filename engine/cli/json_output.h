// `--json` for the CLI commands whose output another program reads
// (docs/cli-json.md): the flag and one record per line on stdout.
#pragma once
#include <cstdio>
#include <cstring>

#include "dsvmi/daemon_json.h"

namespace dsvmi::cli {

// Removes every `flag` from argv (in place); true if there was one.
inline bool take_flag(int* argc, char** argv, const char* flag) {
  bool found = false;
  int w = 0;
  for (int i = 0; i < *argc; ++i) {
    if (!std::strcmp(argv[i], flag)) {
      found = true;
      continue;
    }
    argv[w++] = argv[i];
  }
  *argc = w;
  return found;
}

// One JSON Lines record, flushed (a reading process sees it at once).
inline void print_record(const Json& record) {
  std::printf("%s\n", record.dump().c_str());
  std::fflush(stdout);
}

}  // namespace dsvmi::cli

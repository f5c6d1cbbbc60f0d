// Shared by the CLI commands that talk to `dsvmi daemon`: --socket parsing,
// one request, one-line errors.
#pragma once
#include <cstdio>
#include <cstring>
#include <string>

#include "dsvmi/daemon.h"

namespace dsvmi::cli {

// Removes "--socket PATH" from argv (in place), returning the socket to use.
inline std::string take_socket_arg(int* argc, char** argv) {
  std::string path = default_daemon_socket();
  int w = 0;
  for (int i = 0; i < *argc; ++i) {
    if (!std::strcmp(argv[i], "--socket") && i + 1 < *argc) {
      path = argv[++i];
      continue;
    }
    argv[w++] = argv[i];
  }
  *argc = w;
  return path;
}

inline int call_or_report(const char* cmd, const std::string& socket, const std::string& command, const Json& args,
                          Json* result) {
  Status s = daemon_call(socket, command, args, result);
  if (!s) {
    std::fprintf(stderr, "dsvmi %s: %s\n", cmd, s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace dsvmi::cli

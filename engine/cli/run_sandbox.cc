#include "run_sandbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "dsvmi/sandbox.h"

namespace dsvmi::cli {
namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

bool take_sandbox_flag(int* argc, char** argv) {
  bool on = kSandboxByDefault;
  int w = 0;
  for (int i = 0; i < *argc; ++i) {
    if (!std::strcmp(argv[i], "--no-sandbox")) on = false;
    else argv[w++] = argv[i];
  }
  *argc = w;
  return on;
}

namespace {

bool enter(const char* who, SandboxOptions o, std::string* policy_path, const std::string& write_path,
           const std::string& write_path2, bool quiet) {
  o.who = who;
  if (policy_path && !policy_path->empty()) {
    // The daemon keeps its state directory closed to others (mode 0710,
    // group dsvmi): the dropped user may look names up in it but cannot
    // walk there from / when a parent is private. Working in it, the file
    // is reached by its name alone.
    const std::string dir = dir_of(*policy_path);
    if (::chdir(dir.c_str()) != 0) {
      std::fprintf(stderr, "%s: sandbox: %s: %s\n", who, dir.c_str(), std::strerror(errno));
      return false;
    }
    // A rename replaces the file: the Landlock rule is on its directory.
    o.read_files.push_back(".");
    const size_t slash = policy_path->rfind('/');
    if (slash != std::string::npos) *policy_path = policy_path->substr(slash + 1);
  }
  if (!write_path.empty()) o.write_dirs.push_back(dir_of(write_path));
  if (!write_path2.empty() && dir_of(write_path2) != dir_of(write_path)) o.write_dirs.push_back(dir_of(write_path2));
  o.creates_files = !o.write_dirs.empty();
  SandboxReport r;
  Status s = enter_sandbox(o, &r);
  if (!s) {
    std::fprintf(stderr, "%s: cannot enter the sandbox: %s (--no-sandbox runs without it)\n", who, s.message().c_str());
    return false;
  }
  // A degraded sandbox is always said; a complete one only where stderr is
  // a log (the human crawl keeps its stderr for errors).
  if (!quiet || r.landlock_abi == 0) {
    std::fprintf(stderr, "%s: %s\n", who, r.line().c_str());
    std::fflush(stderr);
  }
  return true;
}

}  // namespace

bool enter_command_sandbox(const char* who, std::string* policy_path, const std::string& write_path,
                           const std::string& write_path2) {
  return enter(who, SandboxOptions{}, policy_path, write_path, write_path2, false);
}

bool enter_crawl_sandbox(const std::string& index_path, const std::string& gate_path, bool quiet) {
  SandboxOptions o;
  o.drop_user = false;
  return enter("dsvmi crawl", o, nullptr, index_path, gate_path, quiet);
}

}  // namespace dsvmi::cli

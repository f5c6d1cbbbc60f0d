// Test-only stand-in for a compromised engine (never part of dsvmi): opens
// what an engine opens, enters the same sandbox, then attempts ACTION.
// Exit status: 0 the action succeeded (a sandbox hole), 10 it was refused
// with an error; the sandbox's seccomp filter kills it (SIGSYS) otherwise.
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "dsvmi/sandbox.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: sandbox_probe ALLOWED_DIR ACTION\n");
    return 2;
  }
  dsvmi::close_inherited_fds();
  const std::string dir = argv[1], action = argv[2];
  // An engine's policy file: the one path it may still open by name.
  if (::chdir(dir.c_str()) != 0) return 3;
  dsvmi::SandboxOptions o;
  o.who = "sandbox_probe";
  o.read_files.push_back(".");
  dsvmi::SandboxReport r;
  if (dsvmi::Status s = dsvmi::enter_sandbox(o, &r); !s) {
    std::fprintf(stderr, "sandbox_probe: %s\n", s.message().c_str());
    return 4;
  }
  std::fprintf(stderr, "sandbox_probe: %s\n", r.line().c_str());
  int rc = -1;
  if (action == "allowed") {  // what an engine does: read its policy file, write its output
    int fd = ::open("policy", O_RDONLY);
    char b[16];
    rc = fd >= 0 && ::read(fd, b, sizeof b) > 0 && ::write(1, "ok\n", 3) == 3 ? 0 : -1;
    if (rc != 0) std::perror("sandbox_probe: allowed");
    return rc == 0 ? 0 : 5;
  } else if (action == "uid") {
    std::printf("%u\n", ::getuid());
    return 0;
  } else if (action == "shadow") {
    rc = ::open("/etc/shadow", O_RDONLY);
  } else if (action == "execve") {
    char* args[] = {const_cast<char*>("/bin/true"), nullptr};
    rc = ::execve("/bin/true", args, nullptr);
  } else if (action == "socket") {
    rc = ::socket(AF_INET, SOCK_STREAM, 0);
  } else if (action == "ptrace") {
    rc = int(::ptrace(PTRACE_ATTACH, ::getppid(), nullptr, nullptr));
  } else if (action == "setuid") {
    rc = ::setuid(0);
  } else {
    return 2;
  }
  if (rc >= 0) return 0;
  std::fprintf(stderr, "sandbox_probe: %s refused: %s\n", action.c_str(), std::strerror(errno));
  return 10;
}

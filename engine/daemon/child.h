// A child process of the daemon (a crawl, an engine, a short tool) and the
// pipe it writes its records to: started without blocking, its output read
// as lines when the poll loop says the pipe is readable, reaped by the loop.
#pragma once
#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi::daemon_internal {

class Child {
 public:
  Child() = default;
  ~Child() { kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept { *this = std::move(o); }
  Child& operator=(Child&& o) noexcept;

  // Runs argv[0] with stdout on a fresh non-blocking pipe; stderr goes to
  // stderr_fd (-1: the daemon's own stderr). SIGPIPE is back to its default
  // in the child (the daemon ignores it).
  Status start(const std::vector<std::string>& argv, int stderr_fd);

  // Reads what the pipe has now and hands every complete line to on_line.
  // A line longer than max_line is dropped (counted in overlong()). At EOF
  // the pipe is closed (fd() becomes -1).
  void read_lines(const std::function<void(const std::string&)>& on_line, size_t max_line);
  // Reads to EOF, blocking: only once the process is gone.
  void drain(const std::function<void(const std::string&)>& on_line, size_t max_line);

  // The process is gone and waitpid() said so (the loop reaps all children).
  void reaped(int wait_status);
  // SIGKILL, reap, close the pipe; nothing left to watch.
  void kill();
  void signal(int sig) const;

  pid_t pid() const { return pid_; }      // > 0 while running
  int fd() const { return fd_; }          // >= 0 while the pipe is open
  bool running() const { return pid_ > 0; }
  bool exited() const { return exited_; } // reaped
  // Exit status (128 + signal for a signal) once exited.
  int exit_code() const { return code_; }
  // "status N" or "signal N" once exited.
  const std::string& exit_text() const { return exit_text_; }
  uint64_t overlong() const { return overlong_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
  bool exited_ = false;
  int code_ = -1;
  std::string exit_text_;
  uint64_t overlong_ = 0;
};

// Runs argv to completion, stdout and stderr captured together (short tools
// only; at most 1 MiB kept). Returns the exit status, -1 if it did not start.
int run_capture(const std::vector<std::string>& argv, std::string* output);

}  // namespace dsvmi::daemon_internal

#include "child.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace dsvmi::daemon_internal {

namespace {

// Starts argv with stdout (and stderr when both) on a fresh pipe; returns the
// pid and the read end (non-blocking, close-on-exec) or -1.
pid_t spawn_piped(const std::vector<std::string>& argv, bool with_stderr, int stderr_fd, int* out_fd,
                  std::string* error) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    *error = std::strerror(errno);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  if (with_stderr) posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  else if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stderr_fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The daemon ignores SIGPIPE, and an ignored signal stays ignored across
  // exec: give children the default back, so an engine whose daemon died
  // (its stdout pipe gone) ends at its next write instead of running on.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (rc != 0) {
    ::close(p[0]);
    *error = std::string("cannot run ") + argv[0] + ": " + std::strerror(rc);
    return -1;
  }
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  *out_fd = p[0];
  return pid;
}

}  // namespace

Child& Child::operator=(Child&& o) noexcept {
  if (this == &o) return *this;
  kill();
  pid_ = std::exchange(o.pid_, -1);
  fd_ = std::exchange(o.fd_, -1);
  buf_ = std::move(o.buf_);
  exited_ = o.exited_;
  code_ = o.code_;
  exit_text_ = std::move(o.exit_text_);
  overlong_ = o.overlong_;
  return *this;
}

Status Child::start(const std::vector<std::string>& argv, int stderr_fd) {
  kill();
  buf_.clear();
  exited_ = false;
  code_ = -1;
  exit_text_.clear();
  overlong_ = 0;
  std::string err;
  pid_ = spawn_piped(argv, false, stderr_fd, &fd_, &err);
  if (pid_ < 0) return Status::error(err);
  return Status::ok();
}

void Child::read_lines(const std::function<void(const std::string&)>& on_line, size_t max_line) {
  char buf[65536];
  while (fd_ >= 0) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // EAGAIN: the rest comes with the next POLLIN
    if (n == 0) {      // exited (or closed stdout): the loop's reap says why
      ::close(fd_);
      fd_ = -1;
      break;
    }
    buf_.append(buf, size_t(n));
    size_t start = 0, nl;
    while ((nl = buf_.find('\n', start)) != std::string::npos) {
      on_line(buf_.substr(start, nl - start));
      start = nl + 1;
    }
    buf_.erase(0, start);
    if (buf_.size() > max_line) {  // no newline within a line's bound: not a record
      buf_.clear();
      ++overlong_;
    }
  }
}

void Child::drain(const std::function<void(const std::string&)>& on_line, size_t max_line) {
  if (fd_ < 0) return;
  ::fcntl(fd_, F_SETFL, 0);
  read_lines(on_line, max_line);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Child::reaped(int st) {
  pid_ = -1;
  exited_ = true;
  code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  exit_text_ = WIFEXITED(st) ? "status " + std::to_string(WEXITSTATUS(st)) : "signal " + std::to_string(WTERMSIG(st));
  // SIGSYS: the engine sandbox's seccomp filter killed it (docs/security.md).
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) exit_text_ += " (SIGSYS: a system call outside the sandbox's allow-list)";
}

void Child::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    reaped(st);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Child::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

int run_capture(const std::vector<std::string>& argv, std::string* output) {
  int fd;
  pid_t pid = spawn_piped(argv, true, -1, &fd, output);
  if (pid < 0) return -1;
  ::fcntl(fd, F_SETFL, 0);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (output->size() < (1 << 20)) output->append(buf, size_t(n));
  }
  ::close(fd);
  int st;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace dsvmi::daemon_internal

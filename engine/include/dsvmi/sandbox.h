// The engine sandbox: what `dsvmi run` and `dsvmi crawl` give up once every
// file they need is open, before they parse bytes a guest wrote. What each
// step stops and what it does not: docs/security.md.
#pragma once

#include <string>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi {

struct SandboxOptions {
  // For log lines ("dsvmi run: sandbox: ...").
  std::string who;
  // Files the sandboxed process may still open for reading (the policy
  // file a SIGHUP re-reads). Everything else is refused by Landlock where
  // the kernel has it, and by the user drop.
  std::vector<std::string> read_files;
  // Directories it may still create and replace files in (the crawl's
  // index and gate).
  std::vector<std::string> write_dirs;
  // The crawl writes its index (create, rename, unlink); the engine only
  // writes to descriptors it already holds.
  bool creates_files = false;
  // The crawl keeps its uid: it creates its index beside the daemon's
  // other files, in directories the sandbox user cannot write
  // (docs/security.md, "What is not sandboxed").
  bool drop_user = true;
};

// What enter_sandbox did, for its log line and for tests.
struct SandboxReport {
  std::string user;        // "dsvmi (999:995)", or why the uid was kept
  int landlock_abi = 0;    // 0: not offered by this kernel
  std::string landlock;    // "ABI 3: ..." or why not
  int seccomp_rules = 0;   // syscalls on the allow-list
  std::string line() const;
};

// Closes every descriptor above stderr: called first thing, so the only
// descriptors left when the sandbox closes are the ones the process opened
// itself (ring, gate, index, disk or NBD socket, output).
void close_inherited_fds();

// Drops to the sandbox user (when root), sets no_new_privs, applies the
// Landlock rules (where offered) and the seccomp allow-list (anything else
// kills the process with SIGSYS). Irreversible. An error means the process
// must not go on.
Status enter_sandbox(const SandboxOptions& options, SandboxReport* report);

// The user and group the engine drops to: `dsvmi` (created by
// scripts/install-deps.sh), else `nobody`/`nogroup`. False if neither exists.
bool sandbox_identity(unsigned* uid, unsigned* gid, std::string* name);

// Lets the sandbox group read `path` (a file the daemon writes for an
// engine) or search it (a directory): chgrp to the sandbox group plus
// `mode`. Best effort: without the group the file stays as it is.
void share_with_sandbox(const std::string& path, unsigned mode);

}  // namespace dsvmi

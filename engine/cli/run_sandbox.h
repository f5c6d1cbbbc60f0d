// The engine sandbox as `dsvmi run` and `dsvmi crawl` enter it
// (docs/security.md): on by default, `--no-sandbox` turns it off.
#pragma once

#include <string>

namespace dsvmi::cli {

// Sanitizer runtimes (LeakSanitizer's exit check, the symbolizer) make system
// calls outside the allow-list, so sanitizer builds, which are test builds,
// run without the sandbox unless a test enters it itself (sandbox_test's
// probe does); release builds have it on (docs/security.md).
#ifdef DSVMI_SANITIZER_BUILD
inline constexpr bool kSandboxByDefault = false;
#else
inline constexpr bool kSandboxByDefault = true;
#endif

// Removes `--no-sandbox` from argv; kSandboxByDefault unless it was there.
bool take_sandbox_flag(int* argc, char** argv);

// Enters the sandbox with everything the command needs already open.
// `policy_path` (may be empty): the file a SIGHUP re-reads; it is rewritten
// to a path that still resolves once the user cannot reach its parents.
// `write_path` (may be empty): a file the command will still create (the
// crawl's index; its directory stays writable). Logs one line on stderr;
// returns false (after logging why) when the sandbox could not be entered.
bool enter_command_sandbox(const char* who, std::string* policy_path, const std::string& write_path,
                           const std::string& write_path2 = "");

// The crawl's sandbox: all of the above but the user drop (docs/security.md).
// quiet: log the sandbox line only when it is degraded (no Landlock).
bool enter_crawl_sandbox(const std::string& index_path, const std::string& gate_path, bool quiet);

}  // namespace dsvmi::cli

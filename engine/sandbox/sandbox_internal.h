// Steps of enter_sandbox, one file each.
#pragma once

#include <string>

#include "dsvmi/sandbox.h"

namespace dsvmi::sandbox_internal {

// Landlock: returns the ABI found (0 when not offered; *why says so).
Status apply_landlock(const SandboxOptions& options, int* abi, std::string* why);
// Seccomp allow-list; *rules: how many syscalls it allows.
Status apply_seccomp(const SandboxOptions& options, int* rules);
// setgroups/setresgid/setresuid to the sandbox identity when root.
Status drop_user(std::string* who);

}  // namespace dsvmi::sandbox_internal

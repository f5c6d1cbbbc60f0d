// The JSON forms of a ring's and a gate's header snapshot: what
// `dsvmi ring-stat --json` and `dsvmi gate-stat --json` print and what the
// daemon puts into `status` (schemas in docs/cli-json.md). One definition
// for both, so the command line and the daemon never disagree.
#pragma once
#include <string>

#include "dsvmi/daemon_json.h"
#include "dsvmi/gate_inspect.h"
#include "dsvmi/ring_inspect.h"

namespace dsvmi {

// Every field of `s`; "valid" false (with "error") when the geometry is not
// a dsvmi ring's. Values are QEMU-writable: informational.
Json ring_snapshot_json(const std::string& path, const RingSnapshot& s);
Json gate_snapshot_json(const std::string& path, const GateSnapshot& s);

// Reads the header of `path` (no child process, read-only mapping) into its
// JSON form; on a file that cannot be read, {"path", "valid": false, "error"}.
Json ring_stat_json(const std::string& path);
Json gate_stat_json(const std::string& path);

}  // namespace dsvmi

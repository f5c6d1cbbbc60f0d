// Read-only inspection of a gate file (dsvmi gate-stat, tests): the published
// generation as a private, validated copy, plus what the reader reported.
#pragma once

#include <cstdint>
#include <string>

#include "dsvmi/gate_writer.h"
#include "dsvmi/status.h"

namespace dsvmi {

struct GateSnapshot {
  uint64_t disk_size = 0;
  uint32_t grain_size = 0;
  uint32_t slots = 0;
  uint64_t file_size = 0;
  uint64_t generation = 0;  // 0: nothing published yet
  uint32_t slot = 0;
  GateMode mode = GateMode::kPassAll;
  uint64_t set_grains = 0;        // counted from the validated copy
  uint32_t containers = 0;
  uint64_t serialized_bytes = 0;
  uint64_t reader_view = 0;       // the reader's announced generation << 8 | slot
  GateCounters counters;          // reader-written: informational
  uint64_t error_generation = 0;  // generation the reader last refused
  std::string reader_error;       // and why ("" if never)
};

// Maps `path` read-only and fills `out`. Fails with a message naming the
// problem if the file or its published generation is not valid.
Status inspect_gate(const std::string& path, GateSnapshot* out);

}  // namespace dsvmi

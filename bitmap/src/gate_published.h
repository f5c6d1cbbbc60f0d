// Copying a gate's published generation out of shared memory, validated, for
// the C++ side (Gate::open, inspect_gate). The QEMU reader does not copy; it
// indexes in place (gate_index.h).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "dsvmi/status.h"
#include "gate_layout.h"
#include "gate_reader_internal.h"

namespace dsvmi::internal {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

struct PublishedCopy {
  uint64_t generation = 0;  // 0: nothing published (the rest is empty)
  uint32_t slot = 0;
  dsvmi_gate_slot_desc desc{};
  std::unique_ptr<uint8_t[], FreeDeleter> bytes;  // desc.size bytes, 32-byte aligned
  uint64_t cardinality = 0;
  uint32_t containers = 0;
};

// `base` maps a gate whose header passed dsvmi_gate_check_header into `geo`.
// Copies the published buffer, re-reads the published word to be sure the
// copy is not torn (retrying a few times), then checks descriptor, checksum
// and frozen structure on the private copy.
Status copy_published(const uint8_t* base, const dsvmi_gate_geometry& geo, PublishedCopy* out);

}  // namespace dsvmi::internal

#include "gate_published.h"

#include <cstring>
#include <vector>

#include "gate_checksum.h"
#include "gate_index.h"

namespace dsvmi::internal {

Status copy_published(const uint8_t* base, const dsvmi_gate_geometry& geo, PublishedCopy* out) {
  const auto* h = reinterpret_cast<const dsvmi_gate_header*>(base);
  char err[256];
  for (int attempt = 0; attempt < 16; attempt++) {
    uint64_t published = __atomic_load_n(&h->published, __ATOMIC_ACQUIRE);
    PublishedCopy copy;
    copy.generation = published >> DSVMI_GATE_SLOT_BITS;
    copy.slot = static_cast<uint32_t>(published & DSVMI_GATE_SLOT_MASK);
    if (copy.generation == 0) {
      *out = std::move(copy);
      return Status::ok();
    }
    if (copy.slot >= geo.nslots) {
      return Status::error("gate: published slot " + std::to_string(copy.slot) + ", the gate has " +
                           std::to_string(geo.nslots));
    }
    std::memcpy(&copy.desc, &h->slots[copy.slot], sizeof(copy.desc));
    if (!dsvmi_gate_check_desc(&geo, copy.slot, copy.generation, &copy.desc, err, sizeof(err))) {
      if (__atomic_load_n(&h->published, __ATOMIC_ACQUIRE) != published) continue;
      return Status::error(err);
    }
    size_t alloc = (copy.desc.size + 31) & ~size_t{31};
    copy.bytes.reset(static_cast<uint8_t*>(std::aligned_alloc(32, alloc ? alloc : 32)));
    if (!copy.bytes) return Status::error("gate: out of memory copying the published bitmap");
    std::memcpy(copy.bytes.get(), base + copy.desc.offset, copy.desc.size);
    if (__atomic_load_n(&h->published, __ATOMIC_ACQUIRE) != published) continue;  // torn: retry

    uint64_t sum = dsvmi_gate_slot_checksum(copy.bytes.get(), copy.desc.size, copy.generation,
                                            copy.desc.mode);
    if (sum != copy.desc.checksum) {
      std::snprintf(err, sizeof(err), "gate slot %u: checksum mismatch for generation %llu",
                    copy.slot, static_cast<unsigned long long>(copy.generation));
      return Status::error(err);
    }
    std::vector<dsvmi_gate_container> table(geo.nkeys);
    std::vector<uint8_t> scratch(5 * size_t{geo.nkeys} + 4);
    if (!dsvmi_gate_index_build(copy.bytes.get(), copy.desc.size, table.data(), geo.nkeys,
                                scratch.data(), &copy.cardinality, &copy.containers, err,
                                sizeof(err))) {
      return Status::error(std::string("gate slot ") + std::to_string(copy.slot) + ": " + err);
    }
    *out = std::move(copy);
    return Status::ok();
  }
  return Status::error("gate: the published generation kept changing while it was copied");
}

}  // namespace dsvmi::internal

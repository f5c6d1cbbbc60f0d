// apply_gate_policy: the policy's grains into the shared gate, one publish.
#include <roaring/roaring.h>

#include "dsvmi/gate_writer.h"
#include "dsvmi/policy.h"

namespace dsvmi {

bool parse_gate_policy(const std::string& name, GatePolicyKind* kind) {
  if (name == "metadata") *kind = GatePolicyKind::MetadataOnly;
  else if (name == "pass-all") *kind = GatePolicyKind::PassAll;
  else if (name == "glob") *kind = GatePolicyKind::MetadataAndGlobs;
  else return false;
  return true;
}

Status apply_gate_policy(const Index& index, const GatePolicy& policy, Gate& gate, GatePolicyStats* stats) {
  if (index.disk_size() != gate.disk_size())
    return Status::error("the gate is for a disk of " + std::to_string(gate.disk_size()) +
                         " bytes, the index for one of " + std::to_string(index.disk_size()));
  if (policy.kind == GatePolicyKind::MetadataAndGlobs && policy.globs.empty())
    return Status::error("the glob policy needs at least one glob");
  roaring_bitmap_t* grains = roaring_bitmap_create();
  Status s = build_gate_grains(index, policy, gate.grain_size(), grains, stats);
  if (s && policy.kind == GatePolicyKind::PassAll) {
    gate.set_mode(GateMode::kPassAll);
  } else if (s) {
    gate.set_mode(GateMode::kSet);
    s = gate.clear_grains({0, gate.grain_count()});
    // Set runs of consecutive grains, one call each.
    roaring_uint32_iterator_t* it = roaring_create_iterator(grains);
    while (s && it->has_value) {
      const uint32_t first = it->current_value;
      uint32_t last = first;
      while (roaring_advance_uint32_iterator(it) && it->current_value == last + 1) ++last;
      s = gate.set_grains({first, uint64_t(last) - first + 1});
    }
    roaring_free_uint32_iterator(it);
    gate.optimize();
  }
  roaring_bitmap_free(grains);
  if (!s) return s;
  return gate.publish();
}

}  // namespace dsvmi

// FAT entry decoding (12-bit packed, 16-bit, 28-bit in 32) and chain walking.
#include "fat_table.h"

#include <cstdio>

#include "le.h"

namespace dsvmi::fat {

uint64_t FatTable::used_bytes(const Geometry& g) {
  const uint64_t entries = uint64_t(g.cluster_count) + 2;
  return (entries * g.fat_bits + 7) / 8;
}

uint32_t FatTable::read_raw(const unsigned char* raw, size_t length, uint32_t c) const {
  switch (bits_) {
    case 12: {
      const size_t at = size_t(c) + c / 2;
      if (at + 1 >= length) return 0;
      const uint16_t v = le16(raw + at);
      return (c & 1) ? v >> 4 : v & 0x0FFF;
    }
    case 16:
      return size_t(c) * 2 + 1 < length ? le16(raw + size_t(c) * 2) : 0;
    default:
      // The top four bits are reserved: Linux ignores them, so does dsvmi.
      return size_t(c) * 4 + 3 < length ? le32(raw + size_t(c) * 4) & 0x0FFFFFFF : 0;
  }
}

void FatTable::decode(const Geometry& g, const unsigned char* raw, size_t length) {
  bits_ = g.fat_bits;
  cluster_count_ = g.cluster_count;
  entries_.assign(size_t(g.cluster_count) + 2, 0);
  free_ = 0;
  for (uint32_t c = 2; c < entries_.size(); ++c) {
    entries_[c] = read_raw(raw, length, c);
    free_ += entries_[c] == 0;
  }
}

uint64_t FatTable::compare(const unsigned char* raw, size_t length, uint32_t* first) const {
  uint64_t differ = 0;
  for (uint32_t c = 2; c < entries_.size(); ++c) {
    if (read_raw(raw, length, c) == entries_[c]) continue;
    if (differ++ == 0) *first = c;
  }
  return differ;
}

FatTable::Kind FatTable::kind(uint32_t c) const {
  const uint32_t v = entries_[c];
  const uint32_t bad = bits_ == 12 ? 0xFF7 : bits_ == 16 ? 0xFFF7 : 0x0FFFFFF7;
  if (v == 0) return Kind::Free;
  if (v == bad) return Kind::Bad;
  if (v > bad) return Kind::End;
  if (v >= 2 && v < uint64_t(cluster_count_) + 2) return Kind::Next;
  return Kind::Reserved;  // 1, or beyond the last cluster
}

ChainWalker::ChainWalker(const Geometry& g, const FatTable& fat)
    : g_(g), fat_(fat), owner_of_(size_t(g.cluster_count) + 2, 0) {}

void ChainWalker::walk(uint32_t first, uint64_t limit, uint64_t owner, Chain* out) {
  out->end = Chain::End::Complete;
  out->at = first;
  out->other_owner = 0;
  out->clusters = 0;
  out->runs.clear();
  if (!g_.valid_cluster(first)) {
    out->end = Chain::End::Invalid;
    return;
  }
  // Ids wrap only after 2^32 chains, more than clusters exist.
  const uint32_t id = uint32_t(chain_owner_.size());
  chain_owner_.push_back(owner);
  uint32_t c = first;
  while (true) {
    if (owner_of_[c] != 0) {
      out->end = owner_of_[c] == id ? Chain::End::Loop : Chain::End::CrossLink;
      out->other_owner = chain_owner_[owner_of_[c]];
      out->at = c;
      return;
    }
    if (out->clusters >= limit) {
      out->end = Chain::End::Limit;
      out->at = c;
      return;
    }
    owner_of_[c] = id;
    if (!out->runs.empty() && out->runs.back().first + out->runs.back().count == c)
      ++out->runs.back().count;
    else
      out->runs.push_back({out->clusters, c, 1});
    ++out->clusters;
    switch (fat_.kind(c)) {
      case FatTable::Kind::End: return;
      case FatTable::Kind::Next: break;
      case FatTable::Kind::Free: out->end = Chain::End::Free; out->at = c; return;
      case FatTable::Kind::Bad: out->end = Chain::End::Bad; out->at = c; return;
      case FatTable::Kind::Reserved: out->end = Chain::End::Invalid; out->at = c; return;
    }
    c = fat_.entry(c);
  }
}

std::string ChainWalker::describe(const Chain& chain) {
  const std::string at = std::to_string(chain.at);
  switch (chain.end) {
    case Chain::End::Complete: return "";
    case Chain::End::Limit: return "cluster chain longer than allowed; stopped before cluster " + at;
    case Chain::End::Loop: return "cluster chain loops back to cluster " + at;
    case Chain::End::CrossLink:
      return "cluster chain runs into cluster " + at + ", which belongs to file id " +
             std::to_string(chain.other_owner) + " (cross-linked)";
    case Chain::End::Bad: return "cluster chain ends in cluster " + at + ", which the FAT marks bad";
    case Chain::End::Free: return "cluster chain ends in cluster " + at + ", which the FAT marks free";
    case Chain::End::Invalid:
      return chain.clusters == 0 ? "first cluster " + at + " is not a data cluster"
                                 : "FAT entry of cluster " + at + " names no data cluster";
  }
  return "";
}

}  // namespace dsvmi::fat
